"""How migrate_pages() (6.3) cuts the `from` list into batches.

Kernel rule (docs/kernel.md §4.1, §4.2): walk the list adding folio_nr_pages() to a running total and
stop at the first folio where the total reaches NR_MAX_BATCHED_MIGRATION; the batch is cut just
BEFORE the next folio, so the folio that crossed the limit is included (a 512-page THP is a batch
of its own). The engine reports each cut as a BATCH_START event with `pages` = base pages in the
batch and `arg` = folios in the batch.
"""

from __future__ import annotations

import pytest
from helpers import build_scenario, headless_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.engine import Engine
from core.events import Event, EventKind
from core.scenario import Mode, Scenario

THP = 9


def make_scenario(orders: list[int], batch_pages: int, *, moves: int = 1,
                  threads: int = 3) -> Scenario:
    return build_scenario(name="cut", orders=orders, cpus=4, threads=threads, mode="batched",
                          moves=moves, batch_pages=batch_pages)


def run(scenario: Scenario) -> tuple[Engine, list[Event]]:
    return headless_run(scenario, Mode.BATCHED)


def batch_starts(events: list[Event], move: int = 0) -> list[tuple[int, int]]:
    return [(e.pages, e.arg) for e in events
            if e.kind is EventKind.BATCH_START and e.move == move]


# Each case: folio orders in list order, the limit, and the (pages, folios) of every batch,
# worked out by hand from the rule above.
CASES = [
    pytest.param([0, 0, 0, THP, 0, 0], 4, [(3 + 512, 4), (2, 2)],
                 id="3-base-THP-2-base-limit-4"),
    pytest.param([THP, THP, THP], 512, [(512, 1)] * 3, id="THPs-one-per-batch"),
    pytest.param([THP, THP, THP], 4, [(512, 1)] * 3, id="THPs-small-limit"),
    pytest.param([0] * 1100, 512, [(512, 512), (512, 512), (76, 76)], id="1100-base-ceil"),
    pytest.param([0] * 1024, 512, [(512, 512), (512, 512)], id="exact-multiple-no-empty-batch"),
    pytest.param([0] * 5, 512, [(5, 5)], id="fewer-than-limit"),
    pytest.param([0] * 511 + [THP], 512, [(511 + 512, 512)], id="THP-crosses-the-limit"),
    pytest.param([0] * 512 + [THP], 512, [(512, 512), (512, 1)], id="limit-reached-before-THP"),
    pytest.param([THP, 0, 0, 0], 512, [(512, 1), (3, 3)], id="THP-then-base"),
    pytest.param([2, 2, 1, 0, 0], 5, [(4 + 4, 2), (2 + 1 + 1, 3)], id="orders-2-2-1-0-0-limit-5"),
    pytest.param([1, 0, 1, 0, 2], 3, [(3, 2), (3, 2), (4, 1)], id="exact-hits-limit-3"),
    pytest.param([0, 2, 0, 1], 1, [(1, 1), (4, 1), (1, 1), (2, 1)], id="limit-1"),
]


@pytest.mark.parametrize(("orders", "limit", "expected"), CASES)
def test_batches_are_cut_by_the_kernel_rule(orders: list[int], limit: int,
                                            expected: list[tuple[int, int]]) -> None:
    moves = 2
    engine, events = run(make_scenario(orders, limit, moves=moves))
    for move in range(moves):
        # The return trip isolates the same folios in the same (address) order.
        assert batch_starts(events, move) == expected
    assert engine.counters.batches == len(expected) * moves
    numbers = [e.batch for e in events if e.kind is EventKind.BATCH_START and e.move == 0]
    assert numbers == list(range(1, len(expected) + 1))


@pytest.mark.parametrize(("orders", "limit", "expected"), CASES)
def test_each_batch_unmaps_exactly_its_folios(orders: list[int], limit: int,
                                              expected: list[tuple[int, int]]) -> None:
    # Folio ids are list positions; batch k holds the next expected[k].folios ids, in order.
    _, events = run(make_scenario(orders, limit))
    unmapped_per_batch: dict[int, list[int]] = {}
    for e in events:
        if e.kind is EventKind.UNMAP and e.move == 0:
            folios = unmapped_per_batch.setdefault(e.batch, [])
            if not folios or folios[-1] != e.folio:  # a PTE-mapped large folio: one per PTE
                folios.append(e.folio)
    first = 0
    for number, (pages, count) in enumerate(expected, start=1):
        ids = list(range(first, first + count))
        assert unmapped_per_batch[number] == ids
        assert sum(1 << orders[i] for i in ids) == pages
        first += count
    assert first == len(orders)


def test_planned_batch_count_is_shown_from_the_start() -> None:
    # [3 base, THP, 2 base] at limit 4 -> 2 batches; the view knows it at the first BATCH_START.
    engine = Engine(make_scenario([0, 0, 0, THP, 0, 0], 4), Mode.BATCHED)
    while True:
        (event,) = engine.step()
        if event.kind is EventKind.BATCH_START:
            break
    view = engine.view()
    assert view.batch == 1
    assert view.batches == 2


def test_no_batches_in_serial_mode() -> None:
    scenario = make_scenario([0] * 20, 4)
    events: list[Event] = []
    engine = Engine(scenario, Mode.SERIAL, checkpoints=False)
    engine.run_to_end(events.append)
    assert engine.counters.batches == 0
    assert not any(e.kind is EventKind.BATCH_START for e in events)


def reference_cut(orders: list[int], limit: int) -> list[tuple[int, int]]:
    """The cut rule written out independently: (pages, folios) per batch."""
    result: list[tuple[int, int]] = []
    start = 0
    while start < len(orders):
        total, end = 0, start
        while end < len(orders) and total < limit:
            total += 1 << orders[end]
            end += 1
        result.append((total, end - start))
        start = end
    return result


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(
    orders=st.lists(st.sampled_from([0, 0, 0, 1, 2, 3, THP]), min_size=1, max_size=60),
    limit=st.integers(1, 600),
)
def test_random_lists_match_the_rule(orders: list[int], limit: int) -> None:
    # threads=0 keeps these runs cheap: the cut does not depend on the workload.
    engine, events = run(make_scenario(orders, limit, threads=0))
    expected = reference_cut(orders, limit)
    assert batch_starts(events) == expected
    assert engine.counters.batches == len(expected)
    assert sum(pages for pages, _ in expected) == sum(1 << o for o in orders)
    # Every batch but the last reached the limit, and without its last folio it would not have.
    pos = 0
    for index, (pages, count) in enumerate(expected):
        if index < len(expected) - 1:
            assert pages >= limit
            assert pages - (1 << orders[pos + count - 1]) < limit
        pos += count
