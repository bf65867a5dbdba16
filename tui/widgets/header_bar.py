"""HeaderBar: the one line that says where the run is: scenario, mode (and a pending switch),
move, batch, pass, phase, simulated time, speed and a PLAYING/PAUSED badge."""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from core.events import Phase
from core.scenario import Mode
from tui.units import format_ns, format_speed
from tui.widgets.frame import Frame

PHASE_NAMES = {Phase.IDLE: "—", Phase.UNMAP: "UNMAP", Phase.FLUSH: "FLUSH", Phase.MOVE: "MOVE",
               Phase.UNDO: "UNDO", Phase.DONE: "DONE"}


Piece = tuple[int, Content, Content]  # (priority: higher drops first, long form, short form)


def fit(pieces: list[Piece], width: int, separator: Content) -> Content:
    """Join pieces with separators so that the line fits ``width``: drop the extras (priority
    3 and up), then shorten pieces one by one, least important first, then drop more."""
    forms = [long for _, long, _ in pieces]
    alive = [True] * len(pieces)

    def line() -> Content:
        return separator.join(
            [form for form, keep in zip(forms, alive, strict=True) if keep and form.cell_length])

    by_importance = sorted(range(len(pieces)), key=lambda i: (-pieces[i][0], -i))
    moves: list[tuple[str, int]] = [("drop", i) for i in by_importance if pieces[i][0] >= 3]
    moves += [("short", i) for i in by_importance]
    moves += [("drop", i) for i in by_importance if pieces[i][0] < 3][:-1]
    current = line()
    for kind, index in moves:
        if current.cell_length <= width:
            break
        if kind == "drop":
            alive[index] = False
        else:
            forms[index] = pieces[index][2]
        current = line()
    return current


def badge(playing: bool, done: bool) -> Content:
    if done:
        return Content.assemble((" ■ DONE ", "bold $background on $success"))
    if playing:
        return Content.assemble((" ▶ PLAYING ", "bold $background on $success"))
    return Content.assemble((" ‖ PAUSED ", "bold $background on $warning"))


def speed_piece(speed: float, fast_forward: bool, short: bool) -> Content:
    parts: list[tuple[str, str]] = [(format_speed(speed), "bold")]
    if fast_forward:
        parts.append((" »»" if short else " »» skipping a quiet gap", "bold $accent"))
    return Content.assemble(*parts)


def mode_piece(mode: Mode, pending: Mode | None, short: bool = False) -> Content:
    style = "bold $background on $primary" if mode is Mode.BATCHED else \
        "bold $background on $secondary"
    parts: list[tuple[str, str] | str] = [(f" {mode.value.upper()} ", style)]
    if pending is not None:
        parts.append((f" →{pending.value.upper()}" if short else
                      f" → {pending.value.upper()} at next batch", "bold $warning"))
    return Content.assemble(*parts)


@dataclass(frozen=True, slots=True)
class SplitHeader:
    """What the header shows in split view."""

    scenario: str
    clock_ns: int
    speed: float
    rate_ns: float
    playing: bool
    done: bool
    fast_forward: bool = False
    achieved_ns: float | None = None
    behind: bool = False
    versus: bool = False  # A against B (two configurations), not serial against batched
    same_seed: bool = True  # both sides draw from one seed (two scenarios may not)


def rate_piece(speed: float, rate_ns: float, achieved_ns: float | None, behind: bool,
               priority: int) -> Piece:
    """Simulated time per wall second: while playing the rate achieved (and whether the engine
    falls behind the speed asked), while paused the rate the speed asks for."""
    asked = format_ns(rate_ns * speed)
    if achieved_ns is None:
        return (priority, Content.assemble((f"({asked}/s)", "$text-muted")), Content(""))
    achieved = format_ns(achieved_ns)
    if behind:
        # Falling behind must stay visible when space is short: it explains a slow clock.
        return (1, Content.assemble((f"{achieved}/s of {asked}/s", "bold $warning"),
                                    (" · behind", "bold $warning")),
                Content.assemble((f"{achieved}/s behind", "bold $warning")))
    return (priority, Content.assemble((f"{achieved}/s", "$text-muted")), Content(""))


def timing_pieces(clock_ns: int, speed: float, fast_forward: bool, rate_ns: float,
                  rate_priority: int, achieved_ns: float | None = None,
                  behind: bool = False) -> list[Piece]:
    """The clock, the speed and the simulated rate, each in a long and a short form."""
    clock = format_ns(clock_ns)
    return [
        (0, Content.assemble(("t=", "$text-muted"), (clock, "bold")),
         Content.assemble((clock.replace(" ", ""), "bold"))),
        (0, speed_piece(speed, fast_forward, False), speed_piece(speed, fast_forward, True)),
        rate_piece(speed, rate_ns, achieved_ns, behind, rate_priority),
    ]


def with_badge(pieces: list[Piece], right: Content, width: int, sep: Content) -> Content:
    """As many pieces as fit on the left, the PLAYING/PAUSED badge on the right."""
    left = fit(pieces, width - right.cell_length - 1, sep)
    gap = max(1, width - left.cell_length - right.cell_length)
    return Content.assemble(left, " " * gap, right)


class HeaderBar(Static):
    """The top line."""

    DEFAULT_CSS = """
    HeaderBar { height: 1; background: $panel; color: $foreground; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__("", id=id, classes=classes)
        self._source: Frame | SplitHeader | None = None
        self._content: Content | None = None

    def show(self, source: Frame | SplitHeader) -> None:
        self._source = source
        self._render_source()

    def on_resize(self) -> None:
        self._render_source()

    def _render_source(self) -> None:
        source = self._source
        if source is None:
            return
        width = max(self.size.width, 1)
        if isinstance(source, SplitHeader):
            content = self.build_split(source, width)
        else:
            content = self.build(source, width)
        if content != self._content:
            self._content = content
            self.update(content, layout=False)

    @staticmethod
    def build(frame: Frame, width: int) -> Content:
        view = frame.view
        sep = Content.assemble((" │ ", "$text-muted"))
        unit = "batch" if view.mode is Mode.BATCHED else "folio"
        fallback = view.sync and view.mode is Mode.BATCHED
        pass_text = f"pass {view.pass_}" + (" sync fallback" if fallback else "")
        phase = PHASE_NAMES.get(view.phase, "?")
        where: list[Piece]
        if view.numa:
            # No migrating task: the threads' own calls, one folio each, in flight side by side.
            c = view.counters
            where = [
                (2, Content(f"NUMA balancing node {view.src}→{view.dst}"),
                 Content(f"{view.src}→{view.dst}")),
                (1, Content(f"faults {c.numa_hint_faults}"), Content(f"f{c.numa_hint_faults}")),
                (1, Content(f"calls {c.migrate_calls}"), Content(f"c{c.migrate_calls}")),
                (3, Content(f"scan pass {view.pass_}"), Content(f"s{view.pass_}")),
            ]
        else:
            where = [
                (2, Content(f"move {view.move + 1}/{view.moves} node {view.src}→{view.dst}"),
                 Content(f"{view.src}→{view.dst}")),
                (1, Content(f"{unit} {view.batch}/{view.batches}"),
                 Content(f"{unit[0]}{view.batch}/{view.batches}")),
                (3, Content(pass_text), Content(f"p{view.pass_}" + ("s" if fallback else ""))),
            ]
        pieces: list[Piece] = [
            (0, Content.assemble((" migviz", "bold $primary"), " · ", (view.scenario, "bold")),
             Content.assemble((f" {view.scenario}", "bold"))),
            (0, mode_piece(view.mode, view.pending_mode),
             mode_piece(view.mode, view.pending_mode, short=True)),
            *where,
            (1, Content.assemble(("phase ", "$text-muted"), (phase, "bold")),
             Content.assemble((phase, "bold"))),
            *timing_pieces(max(frame.clock_ns, view.clock_ns), frame.speed, frame.fast_forward,
                           frame.rate_ns, 4, frame.achieved_ns, frame.behind),
        ]
        return with_badge(pieces, badge(frame.playing, view.done), width, sep)

    @staticmethod
    def build_split(header: SplitHeader, width: int) -> Content:
        sep = Content.assemble((" │ ", "$text-muted"))
        pieces: list[Piece] = [
            (0, Content.assemble((" migviz", "bold $primary"), " · ", (header.scenario, "bold")),
             Content.assemble((f" {header.scenario}", "bold"))),
            (0, Content.assemble((" SPLIT ", "bold $background on $accent"),
                                 " A vs B" if header.versus else " serial vs batched"),
             Content.assemble((" SPLIT ", "bold $background on $accent"))),
            (2, Content("same seed, one clock" if header.same_seed else "one clock"),
             Content("")),
            *timing_pieces(header.clock_ns, header.speed, header.fast_forward, header.rate_ns,
                           3, header.achieved_ns, header.behind),
        ]
        return with_badge(pieces, badge(header.playing, header.done), width, sep)
