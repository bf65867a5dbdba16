"""The event history's IPI sparkline: the bounded histogram of split view counts what the full
history counts, bucket for bucket."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Event, EventKind
from tui.widgets.frame import EventHistory, IpiHistogram


def ipis(times: list[int]) -> list[Event]:
    return [Event(seq, time, EventKind.IPI_RECV, 0) for seq, time in enumerate(sorted(times))]


@settings(deadline=None, database=None)
@given(times=st.lists(st.integers(0, 5_000_000), max_size=300),
       doublings=st.integers(0, 12), count=st.integers(1, 64), limit=st.sampled_from([8, 64]))
def test_the_histogram_counts_what_the_full_history_counts(times: list[int], doublings: int,
                                                           count: int, limit: int) -> None:
    base = 700
    full = EventHistory(rows=True, base_ns=base)
    bounded = EventHistory(rows=False, base_ns=base)
    bounded._histogram = IpiHistogram(base, limit)  # a small limit: many mergers
    events = ipis(times)
    for start in range(0, len(events), 37):  # in frames, as the app records them
        full.extend(events[start:start + 37])
        bounded.extend(events[start:start + 37])
    assert full.ipi_total() == bounded.ipi_total() == len(times)
    now = max(times, default=0)
    bucket = base << doublings
    histogram = bounded._histogram
    if bucket % histogram.width == 0:  # the app's buckets only grow, in doublings of the base
        assert full.ipi_buckets(now, bucket, count) == bounded.ipi_buckets(now, bucket, count)


def test_the_histogram_stays_bounded() -> None:
    histogram = IpiHistogram(1000, limit=256)
    histogram.add(np.arange(0, 10**9, 997, dtype=np.int64))
    assert histogram.counts.size == 256
    assert int(histogram.counts.sum()) == histogram.total
