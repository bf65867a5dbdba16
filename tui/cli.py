"""The `migviz` command: the app, and headless runs for scripts and CI.

Bad input of any kind ends with one ``migviz: error: ...`` line naming what is wrong and exit
code 2; nothing the user wrote is overwritten.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import shutil
import sys
import textwrap
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from core.bench import run_bench, sweep
from core.breakpoints import Breakpoint
from core.costs import cost_sources
from core.engine import Engine
from core.perfetto import write_perfetto
from core.scenario import (
    Mode,
    Scenario,
    ScenarioError,
    builtin_names,
    builtin_text,
    load_scenario,
    to_toml,
)
from core.trace import TraceFormatter, header, write_trace
from tui.keymap import KeymapError, binding_ids, load_keymap
from tui.keymap import default_path as default_keymap_path

if TYPE_CHECKING:
    from textual.theme import Theme

EXIT_BAD_INPUT = 2


class UsageError(Exception):
    """A bad command line that argparse itself cannot see (a file that exists, ...)."""


def _parser() -> argparse.ArgumentParser:
    overrides = argparse.ArgumentParser(add_help=False)
    overrides.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one scenario field, e.g. --set migration.batch_pages=64 (repeatable)",
    )
    mode = argparse.ArgumentParser(add_help=False)
    mode.add_argument("--mode", choices=[m.value for m in Mode],
                      help="override the scenario's mode: serial (Linux 6.2) or batched (6.3)")

    parser = argparse.ArgumentParser(
        prog="migviz",
        description="Watch Linux migrate_pages() move folios between NUMA nodes: the serial "
        "path of Linux 6.2 against the batched TLB flushing of Linux 6.3. With no command, "
        "opens the app on the default scenario.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    tui = commands.add_parser("tui", parents=[overrides, mode], help="open the app (default)",
                              description="Open the app on a scenario.")
    tui.add_argument("scenario", nargs="?", default="default",
                     help="built-in name or path to a .toml file (default: default)")
    tui.add_argument("--paused", action="store_true", help="start paused")
    tui.add_argument("--speed", type=_positive_float, default=1.0,
                     help="playback speed factor, e.g. 0.5, 2, 8 (default 1)")
    tui.add_argument("--theme", help="colour theme (migviz-dark, migviz-light, migviz-okabe-ito), "
                     "or a theme file in the format of themes/*.toml")
    tui.add_argument("--keymap", metavar="FILE",
                     help="remap keys from a TOML file with a [keymap] table of binding id = "
                     "keys (default: $XDG_CONFIG_HOME/migviz/keymap.toml if it exists)")
    tui.add_argument("--keymap-ids", action="store_true",
                     help="list the binding ids a keymap can remap, and exit")
    tui.add_argument("--no-mouse", action="store_true",
                     help="leave the mouse to the terminal (native text selection)")
    tui.add_argument("--break", dest="breaks", action="append", default=[],
                     choices=[kind.value for kind in Breakpoint], metavar="KIND",
                     help="stop playing right after such an event (repeatable): "
                     + ", ".join(kind.value for kind in Breakpoint) + "; k changes them in the app")

    run = commands.add_parser("run", parents=[overrides, mode],
                              help="run a scenario headless and print its figures",
                              description="Run a scenario to the end and print its counters.")
    run.add_argument("scenario", help="built-in name or path to a .toml file")
    run.add_argument("--json", action="store_true", help="print one JSON object")

    compare = commands.add_parser("compare", parents=[overrides],
                                  help="run both modes on one scenario and compare",
                                  description="Run serial and batched on the same scenario and "
                                  "seed, side by side.")
    compare.add_argument("scenario", help="built-in name or path to a .toml file")
    compare.add_argument("--json", action="store_true",
                         help='print {"serial": {...}, "batched": {...}}')

    trace = commands.add_parser("trace", parents=[overrides, mode],
                                help="print the run as ftrace text",
                                description="Print every tracepoint the run fires, in the "
                                "kernel's ftrace format.")
    trace.add_argument("scenario", help="built-in name or path to a .toml file")
    trace.add_argument("-o", "--output", help="write to this file instead of standard output "
                       "(an existing file is never overwritten unless --force)")
    trace.add_argument("--force", action="store_true", help="allow -o to replace a file")
    trace.add_argument("--format", choices=["ftrace", "perfetto"], default="ftrace",
                       help="ftrace text (default) or a JSON trace that ui.perfetto.dev opens: "
                       "a track per CPU with every step, round and IPI handler as a slice")
    trace.add_argument("--printk", action="store_true",
                       help="also print the steps that have no tracepoint (copy, retries, waits) "
                       "as trace_printk() lines")

    bench = commands.add_parser(
        "bench", parents=[overrides], help="reproduce the seed's measurement (both modes)",
        description="Run serial and batched on the seed's setup and set the figures beside the "
        "cover letter's: IPIs -99.1%%, pages/s +291.7%%, flush 83.3%% of migrate_pages() cycles "
        "before, copy 43.7%% after. With --sweep, run one mode per value of one field.")
    bench.add_argument("scenario", nargs="?", default="pmbench-2s",
                       help="built-in name or path to a .toml file (default: pmbench-2s)")
    bench.add_argument("--json", action="store_true", help="print one JSON object (a list with "
                       "--sweep)")
    bench.add_argument("--sweep", metavar="SECTION.KEY=V1,V2,...",
                       help="e.g. migration.batch_pages=1,8,64,512,4096")
    bench.add_argument("--mode", choices=[m.value for m in Mode], default=Mode.BATCHED.value,
                       help="mode of the --sweep runs (default batched)")

    scenarios = commands.add_parser("scenarios", help="list built-in scenarios",
                                    description="List, show or explain scenarios.")
    sub = scenarios.add_subparsers(dest="scenarios_command", metavar="SUBCOMMAND")
    show = sub.add_parser("show", parents=[overrides], help="print a scenario as TOML",
                          description="Print a scenario as TOML, to copy and edit.")
    show.add_argument("scenario", help="built-in name or path to a .toml file")
    sub.add_parser("costs", help="list every cost parameter with its default and source",
                   description="Every cost parameter, its default and where it comes from.")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `migviz` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _dispatch(args, parser)
    except (ScenarioError, UsageError) as err:
        print(f"migviz: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`migviz trace x | head`): stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _dispatch(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    command = args.command
    if command is None:
        return _open_app(load_scenario("default"), None, paused=False, speed=1.0, theme=None)
    if command == "tui":
        if args.keymap_ids:
            for binding_id, what in binding_ids().items():
                print(f"{binding_id:<28} {what}")
            return 0
        keymap = _keymap(args.keymap)
        scenario = load_scenario(args.scenario, args.overrides)
        mode = Mode(args.mode) if args.mode else None
        theme, user_theme = _check_theme(args.theme) if args.theme is not None else (None, None)
        return _open_app(scenario, mode, paused=args.paused, speed=args.speed, theme=theme,
                         breakpoints=frozenset(Breakpoint(kind) for kind in args.breaks),
                         keymap=keymap, mouse=not args.no_mouse, user_theme=user_theme)
    if command == "run":
        scenario = load_scenario(args.scenario, args.overrides)
        result = run_headless(scenario, Mode(args.mode) if args.mode else None)
        print(json.dumps(result, indent=2) if args.json else format_run(result, scenario))
        return 0
    if command == "compare":
        scenario = load_scenario(args.scenario, args.overrides)
        results = {mode.value: run_headless(scenario, mode) for mode in (Mode.SERIAL, Mode.BATCHED)}
        print(json.dumps(results, indent=2) if args.json else format_compare(results, scenario))
        return 0
    if command == "trace":
        scenario = load_scenario(args.scenario, args.overrides)
        return _trace(scenario, Mode(args.mode) if args.mode else None, args.output, args.force,
                      args.printk, args.format)
    if command == "scenarios":
        return _scenarios(args)
    if command == "bench":
        return _bench(args)
    parser.error(f"unknown command {command}")
    return EXIT_BAD_INPUT


def _check_theme(name: str) -> tuple[str, Theme | None]:
    """A theme name, or a theme file of one's own (the format of themes/*.toml). An unknown
    name or a bad file is bad input like any other: say so before the screen takes over."""
    from textual.theme import BUILTIN_THEMES

    from themes import ThemeError, load_builtin_themes, load_theme_file, offered

    if name.endswith(".toml") or "/" in name:
        try:
            theme = load_theme_file(Path(name))
        except ThemeError as err:
            raise UsageError(str(err)) from None
        return theme.name, theme
    ours = [theme.name for theme in load_builtin_themes()]
    if name in ours or name in BUILTIN_THEMES and offered(BUILTIN_THEMES[name]):
        return name, None
    if name in BUILTIN_THEMES:  # as the palette's picker: no contrast can be promised there
        raise UsageError(f"--theme {name}: not offered: it paints on the terminal's own "
                         "background, of unknown colour, so migviz's state colours cannot be "
                         "shown to stay legible on it")
    close = difflib.get_close_matches(name, ours + list(BUILTIN_THEMES), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise UsageError(f"--theme {name}: unknown theme (migviz themes: {', '.join(ours)}; "
                     f"Textual's own work too, e.g. textual-dark; or a theme file){hint}")


def _keymap(given: str | None) -> dict[str, str]:
    """The user's keymap: the file given, else the default one if it exists."""
    path = Path(given) if given else default_keymap_path()
    if given is None and not path.exists():
        return {}
    try:
        return load_keymap(path)
    except KeymapError as err:
        raise UsageError(str(err)) from None


def _open_app(scenario: Scenario, mode: Mode | None, *, paused: bool, speed: float,
              theme: str | None, breakpoints: frozenset[Breakpoint] = frozenset(),
              keymap: dict[str, str] | None = None, mouse: bool = True,
              user_theme: Theme | None = None) -> int:
    try:
        from tui.app import run_app
    except ImportError:  # pragma: no cover - the app ships with the package
        _parser().print_help()
        return 0
    runner: Callable[..., int] = run_app
    return runner(scenario, mode, paused=paused, speed=speed, theme=theme,
                  breakpoints=breakpoints, keymap=keymap, mouse=mouse, user_theme=user_theme)


# ------------------------------------------------------------------------------------------
# Headless runs


def run_headless(scenario: Scenario, mode: Mode | None = None) -> dict[str, Any]:
    """Run a scenario to the end without a UI; the figures of `migviz run --json`."""
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    engine.run_to_end()
    return engine.summary()


def _duration(ns: float) -> str:
    if ns >= 1e9:
        return f"{ns / 1e9:.3f} s"
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.1f} µs"
    return f"{ns:.0f} ns"


def _rate(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f} M"
    if value >= 1e3:
        return f"{value / 1e3:.1f} k"
    return f"{value:.0f}"


def _describe(scenario: Scenario) -> str:
    memory = scenario.memory
    migration = scenario.migration
    moves = "one move" if migration.moves == 1 else f"{migration.moves} moves"
    return (f"{moves} of {memory.total_folios:,} folios ({memory.total_pages:,} pages) between "
            f"node 0 and node 1; {scenario.workload.threads} workload threads; "
            f"initiator CPU {migration.initiator_cpu}")


def format_run(result: dict[str, Any], scenario: Scenario) -> str:
    """The human summary of one run."""
    kernel = "Linux 6.2" if result["mode"] == Mode.SERIAL else "Linux 6.3"
    rows = [
        ("simulated time", _duration(result["sim_time_ns"]), ""),
        ("pages migrated", f"{result['pgmigrate_success']:,}",
         f"pgmigrate_success; {result['pgmigrate_fail']:,} failed (pgmigrate_fail)"),
        ("pages per second", _rate(result["pages_per_sec"]), "simulated"),
        ("shootdown rounds", f"{result['nr_tlb_remote_flush']:,}", "nr_tlb_remote_flush"),
        ("IPIs delivered", f"{result['nr_tlb_remote_flush_received']:,}",
         "nr_tlb_remote_flush_received = sum of the /proc/interrupts TLB row"),
        ("IPIs per page", f"{result['ipis_per_page']:.3f}", ""),
        ("batches / passes", f"{result['batches']:,} / {result['passes']:,}", ""),
        ("retries", f"{result['retries']:,}",
         f"-EAGAIN: {result['eagain_unmap']} at unmap, {result['eagain_move']} at move; "
         f"-EBUSY {result['ebusy']}, -ENOMEM {result['enomem']}"),
        ("sync fallback", f"{result['sync_fallback_folios']:,} folios",
         f"{result['fallback_flush_rounds']:,} rounds flushed one PTE at a time"),
        ("THPs", f"{result['thp_migration_success']:,} migrated",
         f"{result['thp_migration_fail']} failed, {result['thp_migration_split']} split"),
        ("workload stalls", f"{result['stalls']:,}",
         f"p50 {_duration(result['stall_p50_ns'])}, p99 {_duration(result['stall_p99_ns'])}, "
         f"max {_duration(result['stall_max_ns'])}"),
        ("workload accesses", f"{result['accesses']:,}",
         f"{result['tlb_misses']:,} TLB refills, {result['stale_hits']:,} through stale entries"),
        ("events", f"{result['events']:,}", ""),
    ]
    if result["ordering_violations"] or result["lost_writes"]:
        rows.insert(0, ("ORDERING RULE BROKEN", f"{result['ordering_violations']:,} copies",
                        f"started while a TLB flush was pending; {result['lost_writes']:,} "
                        "writes through stale entries lost (at least)"))
    width = max(len(r[0]) for r in rows)
    lines = [f"migviz run {result['scenario']} · {result['mode']} ({kernel})", _describe(scenario),
             ""]
    lines += [f"  {name:<{width}}  {value:>12}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def _change(before: float, after: float) -> str:
    if before == 0:
        return "—" if after == 0 else "new"
    return f"{(after - before) / before * 100:+.1f}%"


def format_compare(results: dict[str, dict[str, Any]], scenario: Scenario) -> str:
    """Serial and batched side by side, with the change in percent."""
    serial, batched = results["serial"], results["batched"]
    rows: list[tuple[str, str, Callable[[float], str]]] = [
        ("IPIs delivered (TLB row)", "nr_tlb_remote_flush_received", lambda v: f"{v:,.0f}"),
        ("shootdown rounds", "nr_tlb_remote_flush", lambda v: f"{v:,.0f}"),
        ("pages per second", "pages_per_sec", _rate),
        ("simulated time", "sim_time_ns", _duration),
        ("pages migrated", "pgmigrate_success", lambda v: f"{v:,.0f}"),
        ("pages failed", "pgmigrate_fail", lambda v: f"{v:,.0f}"),
        ("IPIs per page", "ipis_per_page", lambda v: f"{v:.3f}"),
        ("retries", "retries", lambda v: f"{v:,.0f}"),
        ("workload stall p50", "stall_p50_ns", _duration),
        ("workload stall p99", "stall_p99_ns", _duration),
        ("workload stalls", "stalls", lambda v: f"{v:,.0f}"),
    ]
    lines = [f"migviz compare {scenario.name}: serial (Linux 6.2) vs batched (Linux 6.3)",
             _describe(scenario), "",
             f"  {'metric':<26}{'serial':>14}{'batched':>14}{'change':>10}"]
    for label, key, fmt in rows:
        lines.append(f"  {label:<26}{fmt(serial[key]):>14}{fmt(batched[key]):>14}"
                     f"{_change(serial[key], batched[key]):>10}")
    speedup = batched["pages_per_sec"] / serial["pages_per_sec"] if serial["pages_per_sec"] else 0
    fewer = -float(_change(serial["nr_tlb_remote_flush_received"],
                           batched["nr_tlb_remote_flush_received"]).rstrip("%")) \
        if serial["nr_tlb_remote_flush_received"] else 0.0
    lines += ["", f"  batched migrates {speedup:.2f}× as many pages per second with "
                  f"{fewer:.1f}% fewer TLB-shootdown IPIs"]
    return "\n".join(lines)


def _trace(scenario: Scenario, mode: Mode | None, output: str | None, force: bool,
           printk: bool, fmt: str = "ftrace") -> int:
    if output is not None:
        path = Path(output)
        if path.exists() and not force:
            raise UsageError(f"{output}: already exists; not overwriting it (use --force)")
        if path.is_dir():
            raise UsageError(f"{output}: is a directory")
        if not path.parent.exists():
            raise UsageError(f"{output}: folder {path.parent} does not exist")
        with path.open("w", encoding="utf-8") as stream:
            _write_trace(scenario, mode, stream, printk, fmt)
        return 0
    _write_trace(scenario, mode, sys.stdout, printk, fmt)
    return 0


def _write_trace(scenario: Scenario, mode: Mode | None, stream: TextIO, printk: bool,
                 fmt: str) -> None:
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    if fmt == "perfetto":
        for piece in write_perfetto(engine.iter_events(), scenario):
            stream.write(piece)
        return
    formatter = TraceFormatter(scenario, engine.folios, printk=printk)
    stream.write("\n".join(header(scenario.topology.cpus)) + "\n")
    for line in write_trace(engine.iter_events(), formatter):
        stream.write(line + "\n")


def _bench(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, args.overrides)
    if args.sweep:
        started = time.perf_counter()
        rows = sweep(scenario, args.sweep, Mode(args.mode), args.scenario)
        wall = time.perf_counter() - started
        print(json.dumps(rows, indent=2) if args.json else format_sweep(rows, scenario, wall))
        return 0
    result = run_bench(scenario)
    print(json.dumps(result, indent=2) if args.json else format_bench(result, scenario))
    return 0


def format_bench(result: dict[str, Any], scenario: Scenario) -> str:
    """Model against the seed, metric by metric."""
    serial, batched = result["serial"], result["batched"]
    seed, ranges, within = result["seed"], result["ranges"], result["within_range"]

    signs = {"ipi_reduction_pct": "-", "throughput_gain_pct": "+"}

    def judged(key: str) -> tuple[str, str, str]:
        sign = signs.get(key, "")
        low, high = ranges.get(key, (None, None))
        bounds = f"{sign}{low:g}..{sign}{high:g}" if low is not None else ""
        verdict = ("yes" if within[key] else "NO") if key in within else ""
        return f"{sign}{seed[key]:g}%" if key in seed else "", bounds, verdict

    header_row = (f"  {'metric':<40}{'serial':>12}{'batched':>12}{'change':>10}{'seed':>9}"
                  f"{'range':>13}{'in range?':>11}")
    rows = []

    def row(label: str, s: str, b: str, change: str, key: str | None = None) -> None:
        seed_text, bounds, verdict = judged(key) if key else ("", "", "")
        rows.append(f"  {label:<40}{s:>12}{b:>12}{change:>10}{seed_text:>9}{bounds:>13}"
                    f"{verdict:>11}".rstrip())

    row("IPIs delivered (/proc/interrupts TLB)", f"{serial['nr_tlb_remote_flush_received']:,}",
        f"{batched['nr_tlb_remote_flush_received']:,}", f"-{result['ipi_reduction_pct']:.2f}%",
        "ipi_reduction_pct")
    row("IPI rounds (nr_tlb_remote_flush)", f"{serial['nr_tlb_remote_flush']:,}",
        f"{batched['nr_tlb_remote_flush']:,}", f"-{result['rounds_reduction_pct']:.2f}%")
    row("pages migrated per second", _rate(serial["pages_per_sec"]),
        _rate(batched["pages_per_sec"]), f"+{result['throughput_gain_pct']:.1f}%",
        "throughput_gain_pct")
    row("flush share of migrate_pages cycles", f"{serial['flush_share_pct']:.1f}%",
        f"{batched['flush_share_pct']:.1f}%", "", "serial_flush_share_pct")
    row("copy share of migrate_pages cycles", f"{serial['copy_share_pct']:.1f}%",
        f"{batched['copy_share_pct']:.1f}%", "", "batched_copy_share_pct")
    row("unmap+flush share of migrate_pages", f"{serial['unmap_flush_share_pct']:.1f}%",
        f"{batched['unmap_flush_share_pct']:.1f}%", "", "batched_unmap_flush_share_pct")
    for label, key in (("workload stall p50", "stall_p50_ns"), ("workload stall p99", "stall_p99_ns"),
                       ("workload stall max", "stall_max_ns")):
        row(label, _duration(serial[key]), _duration(batched[key]), "")
    row("workload stalls", f"{serial['stalls']:,}", f"{batched['stalls']:,}", "")
    row("sync fallback folios / their rounds", "",
        f"{batched['sync_fallback_folios']:,} / {batched['fallback_flush_rounds']:,}", "")
    lines = [f"migviz bench {scenario.name}: serial (Linux 6.2) vs batched (Linux 6.3) beside "
             "the seed's figures", _describe(scenario), "", header_row, *rows, ""]
    lines.append("  seed: Huang Ying's cover letter and profile (kernel reference §5). Shares are of "
                 "migrate_pages() CPU time\n  (isolation and sleeping excluded); change = batched "
                 "against serial. Calibration: docs/calibration.md")
    verdict = ("all headline figures in range" if result["all_within_range"]
               else "SOME FIGURES OUT OF RANGE")
    lines.append(f"  {verdict}; wall time {result['wall_s']:.1f} s for "
                 f"{_duration(result['sim_time_ns'])} of simulated time (both modes)")
    return "\n".join(lines)


def format_sweep(rows: list[dict[str, Any]], scenario: Scenario, wall: float) -> str:
    """One line per value of the swept field."""
    field = rows[0]["field"] if rows else "?"
    mode = rows[0]["mode"] if rows else "?"
    lines = [f"migviz bench {scenario.name} --sweep {field} ({mode})", _describe(scenario), "",
             f"  {'value':>8}{'IPIs':>12}{'rounds':>10}{'pages/s':>11}{'stall p50':>12}"
             f"{'stall p99':>12}{'stall max':>12}{'stalls':>9}"]
    for row in rows:
        lines.append(f"  {row['value']!s:>8}{row['nr_tlb_remote_flush_received']:>12,}"
                     f"{row['nr_tlb_remote_flush']:>10,}{_rate(row['pages_per_sec']):>11}"
                     f"{_duration(row['stall_p50_ns']):>12}{_duration(row['stall_p99_ns']):>12}"
                     f"{_duration(row['stall_max_ns']):>12}{row['stalls']:>9,}")
    lines += ["", f"  wall time {wall:.1f} s. Larger batches mean fewer IPIs but folios stay "
              "unmapped longer: threads that touch them wait (stall p99)."]
    return "\n".join(lines)


def _scenarios(args: argparse.Namespace) -> int:
    if args.scenarios_command == "show":
        if args.overrides:
            print(to_toml(load_scenario(args.scenario, args.overrides)), end="")
        elif args.scenario in builtin_names():
            print(builtin_text(args.scenario), end="")
        else:
            load_scenario(args.scenario)  # validate first: a bad file gets its error
            print(Path(args.scenario).read_text("utf-8"), end="")
        return 0
    if args.scenarios_command == "costs":
        width = max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))
        for name, (default, source) in cost_sources().items():
            lines = textwrap.wrap(source, width - 35)
            print(f"{name:<22}{default:>8} ns  {lines[0] if lines else ''}")
            for line in lines[1:]:
                print(f"{'':<35}{line}")
        print("\ndocs §N = shared/reference/kernel-migrate-pages.md, section N; [I] = inferred. "
              "Derivations and confidence: docs/calibration.md. Override any of them in a "
              "scenario's [costs] table or with --set costs.NAME=VALUE.")
        return 0
    names = builtin_names()
    width = max(len(n) for n in names)
    for name in names:
        scenario = load_scenario(name)
        print(f"{name:<{width}}  {scenario.description}")
    print("\nmigviz scenarios show NAME prints one as TOML to copy and edit.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
