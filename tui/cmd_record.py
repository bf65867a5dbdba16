"""``migviz record -o FILE [-- COMMAND]``: a real migration recorded with perf, as text that
``migviz replay`` reads."""

from __future__ import annotations

import argparse

from core.errors import InputError
from core.hot import check_cpus, default_hot_cpus, parse_cpus
from core.record import record_trace
from tui.output import output_file, say


def record_command(args: argparse.Namespace) -> int:
    """Record, write ``args.output`` (never over a file without --force, never half-written)
    and say what it holds on standard error."""
    command = list(args.cmd or [])
    if command[:1] == ["--"]:
        command = command[1:]
    cpus = hot_cpus(args.hot_cpus)
    if args.hot_cpus is None and not cpus:
        say("migviz: one CPU only: no helper keeps memory hot, so every flush stays local")
    with output_file(args.output, args.force) as stream:
        summary = record_trace(stream, command or None, hot_cpus=cpus, hot_mib=args.hot_mib,
                               progress=say)
    say(f"migviz: wrote {args.output}: {summary.describe()}")
    return 0


def hot_cpus(text: str | None) -> list[int]:
    """--hot-cpus as CPU numbers: None is every CPU but the first, ``none`` no CPU.
    InputError naming the option for a bad list or a CPU this process cannot use."""
    if text is None:
        return default_hot_cpus()
    try:
        cpus = parse_cpus(text)
    except ValueError as err:
        raise InputError(f"--hot-cpus {text}: {err}") from None
    try:
        check_cpus(cpus)
    except InputError as err:
        raise InputError(f"--hot-cpus {text}: {err}") from None
    return cpus
