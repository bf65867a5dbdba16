"""Numbers as people read them, one way for every command and panel: the app's stats and
`migviz run` print a figure the same way, so equal figures look equal."""

from __future__ import annotations


def format_ns(ns: float) -> str:
    """A duration with a unit a human reads at a glance: 850 ns, 41.3 µs, 12.35 ms, 1.204 s."""
    if ns < 1_000:
        return f"{ns:.0f} ns"
    if ns < 1_000_000:
        return f"{ns / 1e3:.1f} µs"
    if ns < 1_000_000_000:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.3f} s"


def format_speed(speed: float) -> str:
    """×1, ×16, ×1/4."""
    if speed >= 1:
        return f"×{speed:g}"
    return f"×1/{round(1 / speed)}"


def format_count(value: float) -> str:
    """Counts and rates: 950, 12.3 k, 1.20 M."""
    if value < 1_000:
        return f"{value:.0f}"
    if value < 1_000_000:
        return f"{value / 1e3:.1f} k"
    return f"{value / 1e6:.2f} M"
