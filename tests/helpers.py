"""Small helpers shared by the engine tests."""

from __future__ import annotations


def folio_groups(orders: list[int]) -> list[dict[str, int]]:
    """The scenario's `memory.folios` for a list of folio orders, in list order (runs of the
    same order become one group)."""
    groups: list[dict[str, int]] = []
    for order in orders:
        if groups and groups[-1]["order"] == order:
            groups[-1]["count"] += 1
        else:
            groups.append({"order": order, "count": 1})
    return groups
