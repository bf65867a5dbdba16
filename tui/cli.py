"""The `migviz` command: the app, and headless runs for scripts and CI.

It behaves like a Unix tool. Bad input of any kind, bad arguments included, ends with one
``migviz: error: ...`` line naming what is wrong and exit code 2; output that cannot be written
(a full disk) with one such line and exit code 1; a reader that goes away (``| head``) with a
quiet exit 0. Nothing the user wrote is overwritten. Long headless runs show a progress line on
standard error when it is a terminal (tui/progress.py).
"""

from __future__ import annotations

import argparse
import difflib
import json
import math
import shutil
import stat
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from core.bench import (
    DURATION_NS,
    RECIPES,
    default_jobs,
    parse_sweep,
    run_bench,
    run_once,
    run_recipe,
    sweep,
)
from core.breakpoints import Breakpoint
from core.engine import Engine, tune_collector
from core.errors import InputError
from core.perfetto import write_perfetto
from core.scenario import (
    Caller,
    Mode,
    Scenario,
    ScenarioError,
    builtin_names,
    load_scenario,
    parse_scenario,
    scenario_source,
    to_toml,
)
from core.summary import to_json
from core.trace import DEFAULT_KERNEL, KERNELS, TraceFormatter, header, write_trace
from tui.keymap import KeymapError, binding_ids, load_keymap
from tui.keymap import default_path as default_keymap_path
from tui.output import (
    STDOUT,
    OutputError,
    OutputPathError,
    drop,
    emit,
    flush_stdout,
    output_file,
    say,
    writing,
)
from tui.progress import Progress
from tui.report import (
    format_bench,
    format_compare,
    format_costs,
    format_recipe,
    format_run,
    format_sweep,
    format_versus,
)

if TYPE_CHECKING:
    from _typeshed import SupportsWrite
    from textual.theme import Theme

    from tui.tour import LoadedTour

EXIT_FAILURE = 1  # output could not be written, or memory ran out
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports ctrl+c


class UsageError(Exception):
    """A bad command line: what argparse finds, and what it cannot see (a file that exists...)."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors in the house style: one line pointing at the command's --help
    instead of a usage block. add_subparsers() makes subcommands of the same class."""

    commands: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{' '.join(message.split())} (see '{self.prog} --help')")

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        # argparse's own ignores a failed write: --help > /dev/full would say nothing, exit 0.
        with writing(STDOUT):
            (file or sys.stdout).write(self.format_help())



def as_json_text(value: object) -> str:
    """What --json prints: indented JSON, records (RunSummary, ...) as their objects."""
    return json.dumps(value, indent=2, default=to_json)

def _parser() -> _Parser:
    overrides = _Parser(add_help=False)
    overrides.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
        help="override one scenario field, e.g. --set migration.batch_pages=64 (repeatable)",
    )
    overrides.add_argument(
        "--costs", action=_CostsFile, metavar="FILE",
        help="apply a cost profile: a TOML file with a [costs] table, as migviz calibrate "
        "writes (its values become --set costs.KEY=VALUE; a later --set wins)",
    )
    mode = _Parser(add_help=False)
    mode.add_argument("--mode", choices=[m.value for m in Mode],
                      help="override the scenario's mode: serial (Linux 6.2) or batched (6.3)")

    parser = _Parser(
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
    tui.add_argument("--versus", metavar="SCENARIO",
                     help="open split view racing this scenario (B) against the first (A), each "
                     "in its own mode, instead of serial against batched; --set applies to both, "
                     "--versus-set to B only")
    tui.add_argument("--versus-set", dest="versus_sets", action="append", default=[],
                     metavar="SECTION.KEY=VALUE", help="an override for B only (repeatable)")
    tui.add_argument("--split", action="store_true",
                     help="open in split view: serial and batched race on one clock")
    tui.add_argument("--big", action="store_true",
                     help="projector layout: the grids, the phase strip and the counters, the "
                     "rest folded (z toggles it in the app)")
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
    tui.add_argument("--break", dest="breaks", action="extend", nargs="+", default=[],
                     type=_break_kind, metavar="KIND",
                     help="stop playing right after such an event (one or more, repeatable): "
                     + ", ".join(kind.value for kind in Breakpoint) + "; k changes them in the app")

    run = commands.add_parser("run", parents=[overrides, mode],
                              help="run a scenario headless and print its figures",
                              description="Run a scenario to the end and print its counters.")
    run.add_argument("scenario", help="built-in name or path to a .toml file")
    run.add_argument("--json", action="store_true", help="print one JSON object")

    compare = commands.add_parser(
        "compare", parents=[overrides], help="compare serial and batched, or any two setups",
        description="With one scenario: serial and batched on the same scenario and seed, side "
        "by side. With two (A B), or with --a / --b overrides: any two configurations, e.g. "
        "migviz compare default --a topology.arch=x86-ipi --b topology.arch=arm64-tlbi.")
    compare.add_argument("scenario", help="built-in name or path to a .toml file (A)")
    compare.add_argument("other", nargs="?", help="a second scenario (B; default: A again)")
    compare.add_argument("--a", dest="a_sets", action="append", default=[],
                         metavar="SECTION.KEY=VALUE", help="an override for A only (repeatable)")
    compare.add_argument("--b", dest="b_sets", action="append", default=[],
                         metavar="SECTION.KEY=VALUE", help="an override for B only (repeatable)")
    compare.add_argument("--json", action="store_true",
                         help='print {"serial": {...}, "batched": {...}}, or with two setups '
                         '{"a": {...}, "b": {...}, "labels": {...}}')
    compare.add_argument("--jobs", type=_positive_int, metavar="N", default=default_jobs(),
                         help="run the two sides in up to N processes at once (default: the "
                         "CPU count, %(default)s here); the results are the same")

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
    trace.add_argument("--kernel", choices=list(KERNELS),
                       help=f"print the tracepoint strings of this Linux version (default "
                       f"{DEFAULT_KERNEL}, the one migviz models); 6.18 spells tlb_flush reasons "
                       "'remote IPI send', 'local MM shootdown' and adds nr_split= to "
                       "mm_migrate_pages. Only for ftrace text: with --format perfetto it is "
                       "refused")

    bench = commands.add_parser(
        "bench", parents=[overrides], help="reproduce the seed's measurement (both modes)",
        description="Run serial and batched on the seed's setup and set the figures beside the "
        "cover letter's: IPIs -99.1%, pages/s +291.7%, flush 83.3% of migrate_pages() cycles "
        "before, copy 43.7% after. With --sweep, run one mode per value of one field.")
    bench.add_argument("scenario", nargs="?", default="pmbench-2s",
                       help="built-in name or path to a .toml file (default: pmbench-2s)")
    bench.add_argument("--json", action="store_true", help="print one JSON object (a list with "
                       "--sweep)")
    bench.add_argument("--sweep", metavar="SECTION.KEY=V1,V2,...",
                       help="e.g. migration.batch_pages=1,8,64,512,4096")
    bench.add_argument("--mode", choices=[m.value for m in Mode],
                       help="mode of the --sweep runs (default batched)")
    bench.add_argument("--duration", type=_positive_float, metavar="MS",
                       default=DURATION_NS / 1e6,
                       help="length of the test in ms of simulated time, the same in both modes "
                       "(default %(default)g): the folios move back and forth until it ends and "
                       "everything is counted during the test, as the seed counted")
    bench.add_argument("--jobs", type=_positive_int, metavar="N", default=default_jobs(),
                       help="run up to N of the runs (both modes, a recipe's runs, --sweep's "
                       "values) in processes at once (default: the CPU count, %(default)s "
                       "here); the results are the same")

    scenarios = commands.add_parser("scenarios", help="list built-in scenarios",
                                    description="List, show or explain scenarios.")
    sub = scenarios.add_subparsers(dest="scenarios_command", metavar="SUBCOMMAND")
    show = sub.add_parser("show", parents=[overrides], help="print a scenario as TOML",
                          description="Print a scenario as TOML, to copy and edit.")
    show.add_argument("scenario", help="built-in name or path to a .toml file")
    sub.add_parser("costs", help="list every cost parameter with its default and source",
                   description="Every cost parameter, its default and where it comes from.")
    _kernel_commands(commands)
    _quiz_command(commands)
    _serve_command(commands)
    _tour_command(commands)
    parser.commands = tuple(commands.choices)
    return parser


def _kernel_commands(commands: argparse._SubParsersAction[_Parser]) -> None:
    """The commands that meet the real kernel: replay a trace, record one, watch the host's
    counters, measure the host's costs."""
    replay = commands.add_parser(
        "replay", help="play a real kernel trace in the app (or --json: its counters)",
        description="Open the app on a recorded trace of the kernel's migrate:*, tlb:tlb_flush "
        "and irq_vectors:call_function* tracepoints: perf script, trace-cmd report, tracefs "
        "trace/trace_pipe text or migviz trace output, plain or gzip.")
    replay.add_argument("file", help="the trace file (.gz accepted)")
    replay.add_argument("--json", action="store_true",
                        help="print the trace's counters as one JSON object instead")
    replay.add_argument("--against-model", action="store_true",
                        help="build the scenario that matches the recording, run the model on "
                        "it and print the kernel's counters beside the model's")
    replay.add_argument("--paused", action="store_true", help="start paused")
    replay.add_argument("--speed", type=_positive_float, default=1.0,
                        help="playback speed factor (default 1)")
    replay.add_argument("--theme", help="colour theme, as for migviz tui")
    replay.add_argument("--keymap", metavar="FILE", help="remap keys, as for migviz tui")
    replay.add_argument("--no-mouse", action="store_true",
                        help="leave the mouse to the terminal (native text selection)")

    record = commands.add_parser(
        "record", help="record a real migration with perf (root)",
        description="Record the migration and TLB tracepoints system-wide with perf while a "
        "command runs (default: one memory compaction, or on a host with two or more nodes a "
        "migratepages of a helper process), and write the text trace for migviz replay.")
    record.add_argument("-o", "--output", required=True,
                        help="the text trace to write (an existing file is never overwritten "
                        "unless --force)")
    record.add_argument("--force", action="store_true", help="allow -o to replace a file")
    record.add_argument("--hot-cpus", metavar="CPUS",
                        help="CPUs (e.g. 1,2 or 1-3) on which helper threads keep the helper's "
                        "pages hot, so that shootdowns reach them (default: every CPU but the "
                        "first; 'none' for no helper)")
    record.add_argument("--hot-mib", type=_positive_float, default=64.0, metavar="MIB",
                        help="size of the helper's memory in MiB (default %(default)g)")
    record.add_argument("cmd", nargs=argparse.REMAINDER, metavar="-- COMMAND",
                        help="run this instead of the default migration")

    host = commands.add_parser(
        "host", help="this host's live shootdown and migration counters",
        description="Watch /proc/interrupts' TLB row, /proc/vmstat's migration, NUMA and TLB "
        "counters and the node topology, read every --interval seconds.")
    host.add_argument("--once", action="store_true", help="print one snapshot and exit")
    host.add_argument("--json", action="store_true", help="with --once: as one JSON object")
    host.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                      help="seconds between readings, at least 0.1 (default %(default)g)")

    calibrate = commands.add_parser(
        "calibrate", help="measure this host's shootdown round and copy bandwidth",
        description="Measure this host's TLB-shootdown round against the number of target CPUs "
        "and its 4 KiB / 2 MiB copy bandwidth, print them beside migviz's defaults and write a "
        "cost profile that --costs FILE applies to any command.")
    calibrate.add_argument("-o", "--output", metavar="FILE",
                           help="write the cost profile (TOML) here (an existing file is never "
                           "overwritten unless --force)")
    calibrate.add_argument("--force", action="store_true", help="allow -o to replace a file")
    calibrate.add_argument("--json", action="store_true", help="print the figures as JSON")
    calibrate.add_argument("--quick", action="store_true",
                           help="fewer repetitions: a rough figure in a few seconds")


def _quiz_command(commands: argparse._SubParsersAction[_Parser]) -> None:
    """migviz quiz: predict-then-reveal questions with the engine as the oracle."""
    from tui.cmd_quiz import DEFAULT_COUNT, count_arg, seed_arg

    quiz = commands.add_parser(
        "quiz", help="questions to predict, on small random scenarios (-c: the answers)",
        description="Print OSTEP-style questions on small random scenarios (how many IPIs, how "
        "many rounds, which CPUs, how many pages unmapped at the flush); each answer is what "
        "migviz run reports for its scenario.")
    quiz.add_argument("--seed", type=seed_arg, metavar="N",
                      help="the same seed asks the same questions (default: a random seed, "
                      "printed with the questions)")
    quiz.add_argument("--count", type=count_arg, default=DEFAULT_COUNT, metavar="K",
                      help="how many questions (default %(default)s)")
    quiz.add_argument("-c", "--answers", action="store_true",
                      help="print each answer and why under its question")
    quiz.add_argument("--json", action="store_true",
                      help="print a list of objects: scenario (TOML), mode, question, metric (a "
                      "key of migviz run --json), answer, explanation")


def _serve_command(commands: argparse._SubParsersAction[_Parser]) -> None:
    """migviz serve: the app in a web browser (tui/cmd_serve.py), with tui's options."""
    serve = commands.add_parser(
        "serve", help="serve the app to a web browser (textual-serve)",
        description="Serve the app over HTTP with textual-serve: every browser page opened on it "
        "runs its own migviz tui SCENARIO ... on this machine, with the options given here.")
    served = ("scenario", "overrides", "costs", "mode", "paused", "speed", "theme", "keymap",
              "breaks", "versus", "versus_sets", "split", "big")
    for action in commands.choices["tui"]._actions:  # shared, as argparse's parents= shares them
        if action.dest in served:
            serve._add_action(action)
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default %(default)s: this machine only; any "
                       "other lets whoever reaches it drive the app, and says so)")
    serve.add_argument("--port", type=_port, default=8000, help="port (default %(default)s)")
    serve.add_argument("--tour", nargs="?", const="", metavar="FILE",
                       help="serve a guided tour instead (migviz tour [FILE]; default: the "
                       "built-in tour); takes --big, --theme and --keymap")


def _tour_command(commands: argparse._SubParsersAction[_Parser]) -> None:
    """migviz tour: a guided, narrated tour in the app (tui/tour.py)."""
    tour = commands.add_parser(
        "tour", help="a guided tour for a class: narrated steps, → next, ← back",
        description="Open the app on a guided tour: each step runs a scenario to a point, "
        "narrates it and highlights what to look at. Without FILE, the built-in tour (why "
        "batching the flush made migration faster). A tour is a TOML file of [[step]] tables; "
        "migviz tour --show prints the built-in one to copy and edit.")
    tour.add_argument("file", nargs="?", help="a tour file (default: the built-in tour)")
    tour.add_argument("--check", action="store_true",
                      help="check the tour (every step's scenario and stop) and list its steps")
    tour.add_argument("--show", action="store_true", help="print the tour file's text")
    tour.add_argument("--big", action="store_true",
                      help="projector layout (z toggles it in the app)")
    tour.add_argument("--theme", help="colour theme, as for migviz tui")
    tour.add_argument("--keymap", metavar="FILE", help="remap keys, as for migviz tui")
    tour.add_argument("--no-mouse", action="store_true",
                      help="leave the mouse to the terminal (native text selection)")


def _port(text: str) -> int:
    value = _positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be at most 65535, got {text}")
    return value


class _CostsFile(argparse.Action):
    """--costs FILE: the [costs] table of a cost profile, as --set costs.KEY=VALUE overrides
    in the file's order, before any --set that follows it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        import tomllib

        from pydantic import ValidationError

        from core.costs import Costs

        path = Path(str(values))
        _not_a_device(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise argparse.ArgumentError(self, f"{path}: no such file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise argparse.ArgumentError(self, f"{path}: cannot read: {err}") from None
        except tomllib.TOMLDecodeError as err:
            raise argparse.ArgumentError(self, f"{path}: TOML syntax error: {err}") from None
        costs = data.get("costs")
        if not isinstance(costs, dict) or not costs:
            raise argparse.ArgumentError(self, f"{path}: no [costs] table (a cost profile has "
                                         "one, e.g. [costs] ipi_latency_ns = 1500)")
        known = set(Costs.model_fields)
        for key, value in costs.items():
            if key not in known:
                close = difflib.get_close_matches(key, sorted(known), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise argparse.ArgumentError(self, f"{path}: [costs] {key}: unknown cost (see "
                                             f"'migviz scenarios costs'){hint}")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise argparse.ArgumentError(self, f"{path}: [costs] {key}: must be a number of "
                                             f"nanoseconds, got {value!r}")
            try:
                Costs(**{key: value})
            except ValidationError as err:
                reason = err.errors()[0]["msg"]
                raise argparse.ArgumentError(self, f"{path}: [costs] {key} = {value}: "
                                             f"{reason}") from None
        overrides = list(getattr(namespace, "overrides", None) or [])
        overrides += [f"costs.{key}={value}" for key, value in costs.items()]
        namespace.overrides = overrides


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


def _interval(text: str) -> float:
    value = _positive_float(text)
    if value < 0.1:
        raise argparse.ArgumentTypeError(f"must be at least 0.1 s (a reading redraws the "
                                         f"screen), got {text}")
    return value


def _break_kind(text: str) -> Breakpoint:
    try:
        return Breakpoint(text)
    except ValueError:
        pass
    kinds = ", ".join(kind.value for kind in Breakpoint)
    # --break takes several kinds, so `tui --break flush tiny` reads tiny as a kind.
    looks_like_scenario = text in builtin_names() or text.endswith(".toml") or "/" in text
    hint = f"; if '{text}' is the scenario, put it before --break" if looks_like_scenario else ""
    raise argparse.ArgumentTypeError(f"'{text}' is not a breakpoint kind (kinds: {kinds}){hint}")


def console() -> int:
    """The `migviz` console script: a process of its own, so the garbage collector is tuned for
    the engine (core.engine.tune_collector) before the command runs."""
    tune_collector()
    return main()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command (``argv``: the command line's words); returns the exit code."""
    try:
        code = _main(argv)
    except (ScenarioError, UsageError, OutputPathError, InputError) as err:
        say(f"migviz: error: {err}")
        code = EXIT_BAD_INPUT
    except OutputError as err:
        say(f"migviz: error: {err}")
        if err.stdout:
            drop(sys.stdout)
        code = EXIT_FAILURE
    except MemoryError:
        say("migviz: error: out of memory: this run needs more memory than this machine has")
        code = EXIT_FAILURE
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BrokenPipeError:  # the reader went away (`migviz trace x | head`): stop quietly
        drop(sys.stdout)
        return 0
    try:
        flush_stdout()
    except OutputError as err:
        say(f"migviz: error: {err}")
        drop(sys.stdout)
        return code or EXIT_FAILURE
    except BrokenPipeError:
        drop(sys.stdout)
    return code


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    if words and not words[0].startswith("-") and words[0] not in parser.commands:
        raise UsageError(_unknown_command(words[0], parser.commands))
    try:
        args, extra = parser.parse_known_args(argv)
    except SystemExit as stop:  # --help was printed
        return stop.code if isinstance(stop.code, int) else 0
    if extra:
        raise UsageError(_unexpected(args, extra))
    return _dispatch(args)


def _unknown_command(word: str, commands: tuple[str, ...]) -> str:
    if word in builtin_names() or word.endswith(".toml") or "/" in word:
        hint = f"; to open that scenario: migviz tui {word}"
    else:
        close = difflib.get_close_matches(word, commands, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown command '{word}' (commands: {', '.join(commands)}){hint} (see 'migviz --help')"


def _unexpected(args: argparse.Namespace, extra: list[str]) -> str:
    """Arguments no parser took, blamed on the command they were given to."""
    words = ["migviz"] + [word for word in (args.command, getattr(args, "scenarios_command", None))
                          if word]
    first = extra[0]
    if not first.startswith("-"):
        what = f"unexpected argument '{first}'"
    elif args.command == "compare" and first.split("=")[0] == "--mode":
        what = "compare takes no --mode: it always runs both modes"
    else:
        what = f"unknown option {first}"
    return f"{what} (see '{' '.join(words)} --help')"


def _dispatch(args: argparse.Namespace) -> int:
    command = args.command
    if command is None:
        return _open_app(load_scenario("default"), None, paused=False, speed=1.0, theme=None)
    if command == "tui":
        return _tui(args)
    if command == "run":
        scenario = load_scenario(args.scenario, args.overrides)
        with Progress(sys.stderr, enabled=not args.json) as progress:
            result = run_once(scenario, Mode(args.mode) if args.mode else None, progress.watch)
        emit(as_json_text(result) if args.json else format_run(result, scenario))
        return 0
    if command == "compare" and (args.other or args.a_sets or args.b_sets):
        return _versus(args)
    if command == "compare":
        scenario = load_scenario(args.scenario, args.overrides)
        with Progress(sys.stderr, runs=2, enabled=not args.json) as progress:
            summaries = progress.pool(args.jobs).map(run_once, [(scenario, Mode.SERIAL),
                                                                (scenario, Mode.BATCHED)])
            results = dict(zip((Mode.SERIAL.value, Mode.BATCHED.value), summaries, strict=True))
        emit(as_json_text(results) if args.json else format_compare(results, scenario))
        return 0
    if command == "trace":
        return _trace(args)
    if command == "bench":
        return _bench(args)
    if command == "replay":
        from tui.cmd_replay import replay_command
        return replay_command(args)
    if command == "record":
        from tui.cmd_record import record_command
        return record_command(args)
    if command == "host":
        from tui.cmd_host import host_command
        return host_command(args)
    if command == "calibrate":
        from tui.cmd_calibrate import calibrate_command
        return calibrate_command(args)
    if command == "quiz":
        from tui.cmd_quiz import quiz_command
        return quiz_command(args)
    if command == "serve":
        from tui.cmd_serve import serve_command
        return serve_command(args)
    if command == "tour":
        return _tour(args)
    return _scenarios(args)


def _versus(args: argparse.Namespace) -> int:
    """migviz compare A [B] [--a SET] [--b SET]: two configurations, each in its own mode."""
    first = _load_side(args.scenario, args.overrides, args.a_sets, "--a")
    second = _load_side(args.other or args.scenario, args.overrides, args.b_sets, "--b")
    labels = {"a": _label(args.scenario, args.a_sets), "b": _label(args.other or args.scenario,
                                                                     args.b_sets)}
    if labels["a"] == labels["b"]:
        labels = {"a": f"A: {labels['a']}", "b": f"B: {labels['b']}"}
    with Progress(sys.stderr, runs=2, enabled=not args.json) as progress:
        summaries = progress.pool(args.jobs).map(run_once, [(first, None), (second, None)])
        results = dict(zip("ab", summaries, strict=True))
    if args.json:
        emit(as_json_text({**results, "labels": labels}))
    else:
        emit(format_versus(results["a"], results["b"], labels["a"], labels["b"], first, second))
    return 0


def _load_side(name: str, shared: list[str], own: list[str], option: str) -> Scenario:
    """One side of a comparison: the shared --set overrides are checked first, on their own, so
    that an error after adding the side's overrides names that side's option."""
    first = load_scenario(name, shared)
    return load_scenario(name, [*shared, *own], option) if own else first


def _label(name: str, sets: list[str]) -> str:
    return " ".join([name, *sets])


def _tui(args: argparse.Namespace) -> int:
    if args.keymap_ids:
        emit("\n".join(f"{binding_id:<28} {what}" for binding_id, what in binding_ids().items()))
        return 0
    keymap = _keymap(args.keymap)
    scenario = load_scenario(args.scenario, args.overrides)
    mode = Mode(args.mode) if args.mode else None
    theme, user_theme = _check_theme(args.theme) if args.theme is not None else (None, None)
    versus = None
    labels = ("A", "B")
    if args.versus or args.versus_sets:
        other = args.versus or args.scenario
        versus = load_scenario(other, [*args.overrides, *args.versus_sets])
        labels = (args.scenario, _label(other, args.versus_sets))
    return _open_app(scenario, mode, paused=args.paused, speed=args.speed, theme=theme,
                     breakpoints=frozenset(args.breaks), keymap=keymap, mouse=not args.no_mouse,
                     user_theme=user_theme, versus=versus, versus_labels=labels,
                     split=args.split, big=args.big)


def _tour(args: argparse.Namespace) -> int:
    from tui.tour import builtin_tour_path, load_tour

    tour = load_tour(args.file)  # a missing or malformed file: one line, before anything
    if args.show:
        path = Path(args.file) if args.file else builtin_tour_path()
        emit(path.read_text("utf-8").rstrip("\n"))
        return 0
    if args.check:
        lines = [f"{tour.label}: {tour.tour.title}: {len(tour.steps)} steps, all valid"]
        for index, step in enumerate(tour.steps):
            setup = tour.setups[index]
            what = "race" if setup.split else setup.mode.value
            stop = tour.stop_at(index)
            where = "" if stop is None else (", at the start" if stop == 0
                                             else f", stops after event {stop}")
            lines.append(f"{index + 1:>3}. {step.title}  [{setup.scenario.name}, {what}{where}]")
        emit("\n".join(lines))
        return 0
    keymap = _keymap(args.keymap)
    theme, user_theme = _check_theme(args.theme) if args.theme is not None else (None, None)
    return _open_app(tour.setups[0].scenario, tour.setups[0].mode, paused=True, speed=1.0,
                     theme=theme, keymap=keymap, mouse=not args.no_mouse, user_theme=user_theme,
                     tour=tour, big=args.big)


def _check_theme(name: str) -> tuple[str, Theme | None]:
    """A theme name, or a theme file of one's own (the format of themes/*.toml). An unknown
    name or a bad file is bad input like any other: say so before the screen takes over."""
    from textual.theme import BUILTIN_THEMES

    from themes import ThemeError, load_builtin_themes, load_theme_file, offered

    if name.endswith(".toml") or "/" in name:
        _not_a_device(Path(name))
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
    _not_a_device(path)
    try:
        return load_keymap(path)
    except KeymapError as err:
        raise UsageError(str(err)) from None


def _not_a_device(path: Path) -> None:
    """Refuse a device before a loader reads it: /dev/zero would never end."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing or unreadable: the loader names the problem
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise UsageError(f"{path}: not a regular file (a device?)")


def _migratepages_only(scenario: Scenario, why: str) -> None:
    """Refuse NUMA balancing (migration.caller) where only a migratepages task is modelled."""
    if scenario.migration.caller is Caller.NUMA_BALANCING:
        raise UsageError(f"{scenario.name}: NUMA balancing (migration.caller = "
                         f'"numa-balancing"): {why}')


def _open_app(scenario: Scenario, mode: Mode | None, *, paused: bool, speed: float,
              theme: str | None, breakpoints: frozenset[Breakpoint] = frozenset(),
              keymap: dict[str, str] | None = None, mouse: bool = True,
              user_theme: Theme | None = None, versus: Scenario | None = None,
              versus_labels: tuple[str, str] = ("A", "B"), tour: LoadedTour | None = None,
              split: bool = False, big: bool = False) -> int:
    try:
        from tui.app import run_app
    except ImportError:  # pragma: no cover - the app ships with the package
        _parser().print_help()
        return 0
    runner: Callable[..., int] = run_app
    return runner(scenario, mode, paused=paused, speed=speed, theme=theme,
                  breakpoints=breakpoints, keymap=keymap, mouse=mouse, user_theme=user_theme,
                  versus=versus, versus_labels=versus_labels, tour=tour, split=split, big=big)


# ------------------------------------------------------------------------------------------
# Headless runs


def _trace(args: argparse.Namespace) -> int:
    if args.kernel and args.format == "perfetto":
        raise UsageError("--kernel picks the tracepoint text of --format ftrace; a perfetto trace "
                         "has none (see 'migviz trace --help')")
    scenario = load_scenario(args.scenario, args.overrides)
    mode = Mode(args.mode) if args.mode else None
    kernel = args.kernel or DEFAULT_KERNEL
    if args.output is None:
        # A trace scrolling on the terminal and a progress line on it would mix.
        with Progress(sys.stderr, enabled=not _is_terminal(sys.stdout)) as progress, \
                writing(STDOUT):
            _write_trace(scenario, mode, sys.stdout, args.printk, args.format, progress, kernel)
        return 0
    with Progress(sys.stderr) as progress, output_file(args.output, args.force) as stream:
        _write_trace(scenario, mode, stream, args.printk, args.format, progress, kernel)
    return 0


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (OSError, ValueError):
        return False


def _write_trace(scenario: Scenario, mode: Mode | None, stream: TextIO, printk: bool,
                 fmt: str, progress: Progress, kernel: str = DEFAULT_KERNEL) -> None:
    engine = Engine(scenario, mode, checkpoints=False, history=1)
    events = progress.follow(engine, engine.iter_events())
    if fmt == "perfetto":
        for piece in write_perfetto(events, scenario):
            stream.write(piece)
        return
    formatter = TraceFormatter(scenario, printk=printk, kernel=kernel)
    stream.write("\n".join(header(scenario.topology.cpus, kernel)) + "\n")
    for line in write_trace(events, formatter):
        stream.write(line + "\n")


def _bench(args: argparse.Namespace) -> int:
    scenario = load_scenario(args.scenario, args.overrides)
    _migratepages_only(scenario, "bench reproduces the seed's migratepages measurement; "
                       f"migviz compare {args.scenario} runs both kernels on it")
    if args.sweep:
        runs = len(parse_sweep(args.sweep)[1])
        with Progress(sys.stderr, runs=runs, enabled=not args.json) as progress:
            started = time.perf_counter()
            rows = sweep(scenario, args.sweep, Mode(args.mode or Mode.BATCHED), args.scenario,
                         progress.pool(args.jobs))
            wall = time.perf_counter() - started
        emit(as_json_text(rows) if args.json else format_sweep(rows, scenario, wall))
        return 0
    if args.mode:
        raise UsageError("--mode sets the mode of the --sweep runs; without --sweep, bench runs "
                         "both modes (see 'migviz bench --help')")
    recipe = RECIPES.get(scenario.name)
    if recipe is not None:
        with Progress(sys.stderr, runs=len(recipe.runs), enabled=not args.json) as progress:
            result = run_recipe(scenario, recipe, progress.pool(args.jobs))
        emit(as_json_text(result) if args.json else format_recipe(result, scenario))
        return 0
    with Progress(sys.stderr, runs=2, enabled=not args.json) as progress:
        result = run_bench(scenario, progress.pool(args.jobs),
                           duration_ns=round(args.duration * 1e6))
    emit(as_json_text(result) if args.json else format_bench(result, scenario))
    return 0


def _scenarios(args: argparse.Namespace) -> int:
    if args.scenarios_command == "show":
        # Read once: the file may be a pipe, `migviz scenarios show <(...)`.
        label, text = scenario_source(args.scenario)
        scenario = parse_scenario(text, label, args.overrides)  # a bad file gets its error
        emit(to_toml(scenario) if args.overrides else text, end="")
        return 0
    if args.scenarios_command == "costs":
        emit(format_costs(max(60, min(shutil.get_terminal_size((100, 24)).columns, 120))))
        return 0
    names = builtin_names()
    width = max(len(n) for n in names)
    lines = [f"{name:<{width}}  {load_scenario(name).description}" for name in names]
    emit("\n".join(lines) + "\n\nmigviz scenarios show NAME prints one as TOML to copy and edit.")
    return 0


if __name__ == "__main__":
    raise SystemExit(console())
