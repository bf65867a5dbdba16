"""HostScreen: this host's live TLB-shootdown rates, migration counters and NUMA topology.

Every ``interval`` seconds the screen takes one :class:`~core.host.HostSnapshot` (reading /proc
and /sys is cheap), turns it and the one before into :class:`~core.host.HostRates` and pushes
one immutable :class:`HostView` into its panels inside ``batch_update()``. Every figure on it is
the kernel's: a count as read, Δ the difference from the reading before, /s that Δ divided by
the Δt in the header, so the rates shown are the deltas of the counts shown.

`migviz host` runs it in an app of its own (:func:`run_host_app`); the main app can push it::

    self.push_screen(HostScreen())  # escape or q pops it again
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Static

from core.host import PROC, SYS, HostRates, HostSnapshot, host_rates, take_snapshot
from tui.cmd_host import NO_TLB_COUNTERS, node_text
from tui.themed import ThemedApp
from tui.widgets.ipi_panel import sparkline
from tui.widgets.lines import LinesView

HISTORY = 240  # readings a sparkline remembers (4 minutes at the default interval)
MIN_WIDTH, MIN_HEIGHT = 40, 10
NOT_YET = "–"  # a delta or rate before the second reading


@dataclass(frozen=True, slots=True)
class HostView:
    """What the panels show after one reading."""

    snapshot: HostSnapshot
    previous: HostSnapshot | None  # the reading before, which Δ and /s are taken against
    rates: HostRates | None  # None until there are two readings
    history: tuple[tuple[int, ...], ...]  # per CPU of the snapshot: Δ per reading, oldest first
    readings: int


def rate_text(rate: float | None) -> str:
    """Per second, to no more digits than Δ/Δt as shown can vouch for (Δt has 6 decimals)."""
    if rate is None:
        return NOT_YET
    return f"{rate:.1f}" if abs(rate) < 1000 else f"{rate:.0f}"


def delta_text(delta: int | None) -> str:
    """A difference between two readings."""
    return NOT_YET if delta is None else str(delta)


class HostPanel(LinesView):
    """A bordered panel of lines rebuilt from each :class:`HostView` and on resize."""

    DEFAULT_CSS = """
    HostPanel { border: round $primary; border-title-color: $primary; background: $surface;
                height: auto; }
    """

    def __init__(self, title: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.border_title = title
        self.view: HostView | None = None

    def show(self, view: HostView) -> None:
        self.view = view
        self.set_lines(self.lines_for(view, max(self.text_width, 1)))

    def on_width(self, width: int) -> None:
        if self.view is not None:
            self.set_lines(self.lines_for(self.view, max(width, 1)))

    def lines_for(self, view: HostView, width: int) -> list[Content]:
        raise NotImplementedError


class CpuShootdownPanel(HostPanel):
    """Per CPU: shootdown IPIs received per second, Δ since the last reading, the count since
    boot (/proc/interrupts' TLB row) and a sparkline of Δ per reading on a shared scale."""

    COLUMNS = 6 + 10 + 9 + 13 + 2  # cpu, /s, Δ, count, gap: what is left is the sparkline

    def lines_for(self, view: HostView, width: int) -> list[Content]:
        snapshot, rates = view.snapshot, view.rates
        if not snapshot.tlb_shootdowns:
            return [Content("no TLB row in /proc/interrupts: " + (", ".join(snapshot.missing)
                                                                   or "not readable"))]
        spark_width = max(width - self.COLUMNS, 0)
        shown = [values[-spark_width:] if spark_width else () for values in view.history]
        top = max((max(values) for values in shown if values), default=0)
        scale = f"Δ per reading, top {top}" if spark_width >= 22 else ""
        lines = [Content.styled(f"{'CPU':<6}{'/s':>10}{'Δ':>9}{'count':>13}  {scale}", "bold")]
        deltas = rates.tlb_deltas if rates is not None else (None,) * len(snapshot.tlb_shootdowns)
        per_s = rates.tlb_per_s if rates is not None else (None,) * len(snapshot.tlb_shootdowns)
        for cpu, count, delta, rate, values in zip(snapshot.cpus, snapshot.tlb_shootdowns, deltas,
                                                   per_s, shown, strict=False):
            lines.append(Content.assemble(
                f"{f'cpu{cpu}':<6}{rate_text(rate):>10}{delta_text(delta):>9}{count:>13}  ",
                (sparkline(values, top) if values else "", "$ipi"),
            ))
        known = [delta for delta in deltas if delta is not None]
        all_delta = sum(known) if rates is not None and known else None
        all_rate = None if all_delta is None or rates is None else all_delta / rates.seconds
        lines.append(Content.styled(f"{'all':<6}{rate_text(all_rate):>10}{delta_text(all_delta):>9}"
                                    f"{sum(snapshot.tlb_shootdowns):>13}", "bold"))
        return lines


class CounterPanel(HostPanel):
    """The /proc/vmstat counters kept (pgmigrate_*, thp_migration_*, numa_*, nr_tlb_*): count
    since boot, Δ since the last reading, and per second."""

    def lines_for(self, view: HostView, width: int) -> list[Content]:
        vmstat, rates = view.snapshot.vmstat, view.rates
        if not vmstat:
            return [Content("no counters: /proc/vmstat is not readable")]
        name_width = max(len(name) for name in vmstat) + 1
        lines = [Content.styled(f"{'counter':<{name_width}}{'count':>14}{'Δ':>10}{'/s':>11}",
                                "bold")]
        for name, value in vmstat.items():
            delta = rates.vmstat_deltas.get(name) if rates is not None else None
            rate = rates.vmstat_per_s.get(name) if rates is not None else None
            style = "$ipi" if delta else ""
            lines.append(Content.assemble(
                f"{name:<{name_width}}{value:>14}",
                (f"{delta_text(delta):>10}{rate_text(rate):>11}", style)))
        if not any(name.startswith("nr_tlb_") for name in vmstat):
            lines.append(Content.styled(NO_TLB_COUNTERS, "dim"))
        return lines


class TopologyPanel(HostPanel):
    """The online NUMA nodes: CPUs, memory (total, free) and distances."""

    def lines_for(self, view: HostView, width: int) -> list[Content]:
        nodes = view.snapshot.nodes
        if not nodes:
            return [Content("no nodes: /sys/devices/system/node is not readable")]
        return [Content(node_text(node)) for node in nodes]


class HostScreen(Screen[None]):
    """This host's live counters, read every ``interval`` seconds.

    Self-contained: it owns its timer and its panels, and escape or q dismisses it, so any app
    can push it (``app.push_screen(HostScreen())``). ``proc`` and ``sys`` are the roots it
    reads below; ``first`` is a snapshot already taken, to show at once.
    """

    BINDINGS = [
        Binding("escape,q", "close", "Close", id="host.close", tooltip="close the host view"),
    ]

    DEFAULT_CSS = """
    HostScreen #host-header { height: auto; padding: 0 1; background: $panel; }
    HostScreen #host-body { height: 1fr; }
    HostScreen #host-cpus { max-height: 50%; }
    HostScreen #host-counters { height: 1fr; min-height: 4; }
    HostScreen #host-topology { max-height: 30%; }
    HostScreen #host-too-small { display: none; width: 100%; height: 1fr;
                                 content-align: center middle; }
    HostScreen.-too-small #host-header, HostScreen.-too-small #host-body { display: none; }
    HostScreen.-too-small #host-too-small { display: block; }
    """

    def __init__(self, interval: float = 1.0, *, proc: Path = PROC, sys: Path = SYS,
                 first: HostSnapshot | None = None) -> None:
        super().__init__()
        self.interval = interval
        self.proc = proc
        self.sys = sys
        self._first = first
        self.view: HostView | None = None
        self._history: dict[int, deque[int]] = {}
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield Static("", id="host-header")
        with Vertical(id="host-body"):
            yield CpuShootdownPanel(f"TLB shootdowns received ({self.proc / 'interrupts'})",
                                    id="host-cpus")
            yield CounterPanel(f"migration, NUMA and TLB counters ({self.proc / 'vmstat'})",
                               id="host-counters")
            yield TopologyPanel(f"NUMA nodes ({self.sys / 'devices/system/node'})",
                                id="host-topology")
        yield Static("", id="host-too-small")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self._apply_size(*self.size)
        first, self._first = self._first, None
        self.apply(first if first is not None else take_snapshot(self.proc, self.sys))
        self._timer = self.set_interval(self.interval, self.read_host, name="host-readings")

    def on_resize(self, event: events.Resize) -> None:
        self._apply_size(event.size.width, event.size.height)

    def _apply_size(self, width: int, height: int) -> None:
        small = width < MIN_WIDTH or height < MIN_HEIGHT
        self.set_class(small, "-too-small")
        if small:
            self.query_one("#host-too-small", Static).update(
                f"migviz host needs at least {MIN_WIDTH}×{MIN_HEIGHT} (now {width}×{height})")

    def read_host(self) -> None:
        """Take one reading now and show it (the timer's callback)."""
        self.apply(take_snapshot(self.proc, self.sys))

    def apply(self, snapshot: HostSnapshot) -> None:
        """Show ``snapshot``, with its deltas and rates against the reading before."""
        previous = self.view.snapshot if self.view is not None else None
        if previous is not None and snapshot.time_ns <= previous.time_ns:
            return  # not later than what is shown: nothing to difference against
        rates = host_rates(previous, snapshot) if previous is not None else None
        if rates is not None:
            for cpu, delta in zip(rates.cpus, rates.tlb_deltas, strict=False):
                if delta is not None:
                    self._history.setdefault(cpu, deque(maxlen=HISTORY)).append(delta)
        history = tuple(tuple(self._history.get(cpu, ()))
                        for cpu in snapshot.cpus[:len(snapshot.tlb_shootdowns)])
        readings = self.view.readings + 1 if self.view is not None else 1
        self.view = HostView(snapshot, previous, rates, history, readings)
        with self.app.batch_update():
            self.query_one("#host-header", Static).update(header_text(self.view, self.interval))
            for panel in self.query(HostPanel):
                panel.show(self.view)

    def action_close(self) -> None:
        self.dismiss(None)


def header_text(view: HostView, interval: float) -> Content:
    """Where the figures come from and over what time the deltas were taken."""
    parts: list[Content | str | tuple[str, str]] = [("this host", "bold"),
                                                     f" · every {interval:g} s"]
    if view.rates is None:
        parts.append(" · first reading: Δ and /s come with the next")
    else:
        parts.append(f" · reading {view.readings}, Δt {view.rates.seconds:.6f} s")
    nodes, cpus = len(view.snapshot.nodes), len(view.snapshot.cpus)
    parts.append(f" · {cpus} CPU{'s' if cpus != 1 else ''}, {nodes} node{'s' if nodes != 1 else ''}")
    if view.snapshot.missing:
        parts.append(("\nmissing: " + "; ".join(view.snapshot.missing), "$error"))
    return Content.assemble(*parts)


class HostApp(ThemedApp):
    """`migviz host` without --once: the HostScreen in an app of its own; closing it quits."""

    TITLE = "migviz host"

    def __init__(self, interval: float = 1.0, *, proc: Path = PROC, sys: Path = SYS,
                 first: HostSnapshot | None = None) -> None:
        super().__init__()
        self.host_screen = HostScreen(interval, proc=proc, sys=sys, first=first)

    def on_mount(self) -> None:
        self.use_theme(None)
        self.push_screen(self.host_screen, callback=lambda _: self.exit(0))


def run_host_app(interval: float = 1.0, *, proc: Path = PROC, sys: Path = SYS,
                 first: HostSnapshot | None = None) -> int:
    """Run the live host view until it is closed; returns the exit code."""
    app = HostApp(interval, proc=proc, sys=sys, first=first)
    app.run()
    return int(app.return_code or 0)
