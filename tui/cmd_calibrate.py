"""`migviz calibrate`: measure this host's shootdown round and copy costs (core/calibrate.py),
print them beside migviz's defaults, and write them as a cost profile for ``--costs FILE``.

With one CPU there is no other CPU to interrupt: the report says so in one line (with --json, a
line on standard error), the copy is still measured, and the profile holds the copy cost only;
exit 0. Progress goes to standard error, only when it is a terminal and the output is not --json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import textwrap
import time
from contextlib import ExitStack
from typing import TextIO

from core.calibrate import Calibration, describe_host, measure, render_profile
from core.costs import Costs
from tui.output import emit, output_file, say
from tui.progress import StatusLine
from tui.units import format_ns


def calibrate_command(args: argparse.Namespace) -> int:
    """Run `migviz calibrate`; returns the exit code."""
    command = ["migviz", "calibrate"] + (["--quick"] if args.quick else []) \
        + (["-o", args.output] if args.output else [])
    with ExitStack() as stack:
        # Opened first: an existing file without --force is refused before any measuring, and a
        # run that fails or is interrupted leaves no file behind (tui/output.py).
        profile_file = stack.enter_context(output_file(args.output, args.force)) \
            if args.output is not None else None
        with _Status(sys.stderr, enabled=not args.json) as status:
            calibration = measure(quick=args.quick, report=status.show)
        if calibration.note and args.json:  # the table says it otherwise
            say(f"migviz: calibrate: {calibration.note}")
        text = render_profile(calibration, shlex.join(command))
        if profile_file is not None:
            profile_file.write(text)
    if args.json:
        emit(json.dumps(calibration.to_dict() | {"profile_file": args.output}, indent=2))
    else:
        emit(format_calibration(calibration, args.output))
    return 0


def format_calibration(calibration: Calibration, output: str | None) -> str:
    """The measurements, then each cost field this host gives beside migviz's default."""
    host = calibration.host
    lines = [f"host: {describe_host(host)}", ""]
    if calibration.note:
        lines += [f"shootdown round: not measured: {calibration.note}", ""]
    else:
        lines += _round_lines(calibration)
    copy = calibration.copy
    lines += [f"copy (same node): 4 KiB {format_ns(copy.page_ns)} ({copy.page_gbps:.1f} GB/s; best "
              f"{format_ns(copy.page_best_ns)}), 2 MiB {format_ns(copy.huge_ns)} "
              f"({copy.huge_gbps:.1f} GB/s; best {format_ns(copy.huge_best_ns)})", ""]
    default = Costs()
    profile = calibration.profile()
    width = max(len(name) for name in profile)
    lines.append(f"  {'cost':<{width}}  {'default':>9}  {'this host':>9}  {'ratio':>6}  how")
    for name, (value, why) in profile.items():
        base = getattr(default, name)
        ratio = f"{value / base:.2f}x" if base else "-"
        lines.append(f"  {name:<{width}}  {base:>9,}  {value:>9,}  {ratio:>6}  "
                     f"{why.split(':')[0].split(' ')[0]}")
    lines.append("")
    lines.append(f"profile written to {output}; apply it with --costs {output}" if output else
                 "write these as a profile with -o FILE (each value's derivation in a comment), "
                 "then apply it with --costs FILE")
    return "\n".join(lines)


def _round_lines(calibration: Calibration) -> list[str]:
    rounds = dict(calibration.rounds())
    lines = [f"shootdown round: mprotect() RW->R of a page on CPU {calibration.initiator_cpu}, "
             "threads of this process on k other CPUs;",
             "null(k): an mprotect() that changes no PTE; round(k) = [t(k) - null(k)] - "
             "[t(0) - null(0)]",
             f"  {'k':>2}  {'t(k)':>9}  {'null(k)':>9}  {'round':>9}  TLB IPIs seen / expected"]
    for point in calibration.points:
        seen = "-" if point.k == 0 else (
            f"{point.deliveries_observed:,} / {point.deliveries_expected:,} "
            f"({point.deliveries_observed / max(point.deliveries_expected, 1):.0%})"
            + ("" if point.confirmed else ": not confirmed, left out"))
        round_ns = format_ns(rounds[point.k]) if point.k in rounds else "-"
        lines.append(f"  {point.k:>2}  {format_ns(point.ns_per_change):>9}  "
                     f"{format_ns(point.ns_per_null):>9}  {round_ns:>9}  {seen}")
    fitted = calibration.fit()
    if fitted is not None:
        slope, intercept = fitted
        lines.append("  per target: not measurable with one target CPU" if slope is None else
                     f"  least squares: round(k) = {format_ns(intercept)} + k x {format_ns(slope)}")
    if any(0 < p.deliveries_observed < 0.9 * p.deliveries_expected for p in calibration.points):
        lines += textwrap.wrap(
            "fewer IPIs than changes: a target running another task (or, on a VM, a preempted "
            "vCPU) is skipped; t(k) is the median of the slowest calls, as many as the IPIs "
            "seen (an idle host gives cleaner figures)", 96, initial_indent="  ",
            subsequent_indent="  ")
    return lines + [""]


class _Status(StatusLine):
    """What is being measured, with the time so far, on one line of standard error (only on a
    terminal); blanked at the end, so that the table starts on a clean line."""

    def __init__(self, stream: TextIO, *, enabled: bool) -> None:
        super().__init__(stream, enabled=enabled)
        self._start = time.monotonic()

    def __enter__(self) -> _Status:
        return self

    def __exit__(self, *_: object) -> None:
        self.clear()

    def show(self, what: str) -> None:
        """Draw ``what`` with the time so far (between measurements, never inside one)."""
        self.draw(f"migviz: calibrate: {what} · {time.monotonic() - self._start:.0f} s")
