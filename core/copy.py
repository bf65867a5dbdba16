"""Copy engines: who copies a folio's contents during the move, and how fast.

``migration.copy`` picks one:

- ``cpu`` — ``folio_copy()`` on the migrating task's CPU, one folio after another, as Linux 6.3
  does (``costs.copy_page_ns`` per base page);
- ``mtcopy:N`` / ``dma:N`` — the batch copy of Shivank Garg's and Zi Yan's copy-offload series
  (RFC v3, docs/kernel.md §9.1): in a batched move, the metadata of every folio of the batch is
  migrated first (``MIGRATE_NO_COPY``), then the contents of all of them in one batched copy by
  N kernel threads (``mtcopy``) or N DMA channels (``dcbm``), then every folio is remapped.
  Serial mode keeps the CPU's per-folio copy: the series changes only the batched path.

How much faster the offloaded copy is comes from the series' published ``move_pages()``
throughputs (``core/data/copy_offload.toml``, with its source). Those are end-to-end figures; the
copy's part is taken out as follows [I]: at the default ``copy_page_ns`` (380 ns per 4 KiB, which
the same paper's 35% copy share at 4 KiB gives, and which makes 97% at 2 MiB as published), the
baseline's non-copy time per folio is its end-to-end time minus that copy; an engine's copy time
is its end-to-end time minus the same non-copy time. The ratio to the baseline copy scales the
scenario's own ``copy_page_ns``. Folio sizes the table lacks (8 KiB, 32 KiB) are interpolated
geometrically between their neighbours. Each batched copy also pays a set-up and completion cost
(``copy_setup_ns``: queueing work on N threads and waiting, or mapping the batch for DMA and its
completion interrupt; [I]).
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from core.costs import Costs

DATA = Path(__file__).with_name("data") / "copy_offload.toml"
DERIVED_AT_COPY_PAGE_NS = 380  # the default copy_page_ns the factors are derived at
MIN_FACTOR = 0.05  # an engine's copy is never taken as more than 20x faster than the CPU's
ENGINES = ("cpu", "mtcopy", "dma")


@dataclass(frozen=True, slots=True)
class CopyEngine:
    """A copy engine: ``kind`` cpu, mtcopy or dma, with ``width`` threads or channels."""

    kind: str
    width: int
    costs: Costs

    @property
    def batched(self) -> bool:
        """Whether a batched move copies its folios in one offloaded batch."""
        return self.kind != "cpu"

    @property
    def label(self) -> str:
        return "cpu" if self.kind == "cpu" else f"{self.kind}:{self.width}"

    def folio_ns(self, order: int) -> int:
        """One folio's copy on the CPU (serial mode, and the cpu engine)."""
        return self.costs.copy_ns(order)

    def batch_ns(self, orders: list[int]) -> int:
        """The batched copy of folios of these orders, set-up and completion included."""
        if not self.batched:
            return sum(self.folio_ns(order) for order in orders)
        factors = speed_factors(self.label)
        copy = sum(self.costs.copy_ns(order) * factors[order] for order in orders)
        return self.costs.copy_setup_ns + round(copy)


def parse_engine(text: str) -> tuple[str, int]:
    """``cpu``, ``mtcopy:N`` or ``dma:N`` as (kind, width); ValueError naming what is wrong."""
    kind, _, width = text.partition(":")
    if kind == "cpu" and not width:
        return "cpu", 1
    if kind not in ENGINES:
        raise ValueError(f'"{text}": not a copy engine (cpu, mtcopy:N or dma:N)')
    published = published_widths(kind)
    if not width.isdigit() or int(width) not in published:
        raise ValueError(f'"{text}": {kind} is published for N = '
                         f"{', '.join(map(str, published))} (threads or channels)")
    return kind, int(width)


def engine(costs: Costs, text: str) -> CopyEngine:
    kind, width = parse_engine(text)
    return CopyEngine(kind, width, costs)


@cache
def _table() -> dict[str, object]:
    with DATA.open("rb") as stream:
        return tomllib.load(stream)


def published_widths(kind: str) -> tuple[int, ...]:
    rows = _table()["gbps"]
    assert isinstance(rows, dict)
    return tuple(sorted(int(name.split(":")[1]) for name in rows if name.startswith(kind + ":")))


@cache
def speed_factors(label: str) -> tuple[float, ...]:
    """Per folio order 0..9: the engine's copy time over the CPU's [I, see the module text]."""
    table = _table()
    sizes = [int(kib) for kib in table["sizes_kib"]]  # type: ignore[attr-defined]
    rows = table["gbps"]
    assert isinstance(rows, dict)
    baseline, mine = rows["baseline"], rows[label]
    factors_by_kib = {}
    for kib, base_gbps, gbps in zip(sizes, baseline, mine, strict=True):
        nbytes = kib * 1024
        base_ns = nbytes / base_gbps  # GB/s = bytes per ns
        copy_ns = DERIVED_AT_COPY_PAGE_NS * (kib // 4)
        other_ns = base_ns - copy_ns
        engine_copy = nbytes / gbps - other_ns
        factors_by_kib[kib] = max(engine_copy / copy_ns, MIN_FACTOR)
    factors = []
    for order in range(10):
        kib = 4 << order
        if kib in factors_by_kib:
            factors.append(factors_by_kib[kib])
            continue
        lower = max(k for k in sizes if k < kib)
        upper = min(k for k in sizes if k > kib)
        weight = (math.log(kib) - math.log(lower)) / (math.log(upper) - math.log(lower))
        factors.append(math.exp((1 - weight) * math.log(factors_by_kib[lower])
                                + weight * math.log(factors_by_kib[upper])))
    return tuple(factors)
