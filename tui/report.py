"""The human-readable reports of headless runs: `migviz run`, `compare`, `bench`, and the
cost table of `scenarios costs`."""

from __future__ import annotations

import textwrap
from collections import Counter
from collections.abc import Callable
from typing import Any

from core.bench import SweepRow
from core.costs import cost_sources
from core.scenario import Arch, Caller, Mode, Scenario
from core.summary import RunSummary
from tui.units import format_count, format_ns


def _describe(scenario: Scenario, *, moves: bool = True) -> str:
    memory = scenario.memory
    migration = scenario.migration
    if migration.caller is Caller.NUMA_BALANCING:
        numa = scenario.numa
        scans = "one scan" if numa.passes == 1 else f"{numa.passes} scans"
        return (f"NUMA balancing: {scans} of {memory.total_folios:,} folios "
                f"({memory.total_pages:,} pages, starting on node 0), one every "
                f"{format_ns(numa.scan_period_ns)};\n{scenario.workload.threads} threads on CPUs "
                f"{', '.join(map(str, scenario.workload.thread_cpus))} migrate what they fault "
                "on, one folio per migrate_pages() call")
    count = "one move" if migration.moves == 1 else f"{migration.moves} moves"
    what = f"{count} of " if moves else ""
    return (f"{what}{memory.total_folios:,} folios ({memory.total_pages:,} pages) between "
            f"node 0 and node 1; {scenario.workload.threads} workload threads; "
            f"initiator CPU {migration.initiator_cpu}")


def format_run(result: RunSummary, scenario: Scenario) -> str:
    """The human summary of one run."""
    kernel = "Linux 6.2" if result.mode == Mode.SERIAL else "Linux 6.3"
    rows = [
        ("simulated time", format_ns(result.sim_time_ns), ""),
        ("pages migrated", f"{result.pgmigrate_success:,}",
         f"pgmigrate_success; {result.pgmigrate_fail:,} failed (pgmigrate_fail)"),
        ("pages per second", format_count(result.pages_per_sec), "simulated"),
        ("shootdown rounds", f"{result.nr_tlb_remote_flush:,}", "nr_tlb_remote_flush"),
        ("IPIs delivered", f"{result.nr_tlb_remote_flush_received:,}",
         "nr_tlb_remote_flush_received = sum of the /proc/interrupts TLB row"),
        ("IPIs per page", f"{result.ipis_per_page:.3f}", ""),
        ("batches / passes", f"{result.batches:,} / {result.passes:,}", ""),
        ("retries", f"{result.retries:,}",
         f"-EAGAIN: {result.eagain_unmap} at unmap, {result.eagain_move} at move; "
         f"-EBUSY {result.ebusy}, -ENOMEM {result.enomem}"),
        ("sync fallback", f"{result.sync_fallback_folios:,} folios",
         f"{result.fallback_flush_rounds:,} rounds flushed one PTE at a time"),
        ("THPs", f"{result.thp_migration_success:,} migrated",
         f"{result.thp_migration_fail} failed, {result.thp_migration_split} split"),
        ("workload stalls", f"{result.stalls:,}",
         f"p50 {format_ns(result.stall_p50_ns)}, p99 {format_ns(result.stall_p99_ns)}, "
         f"max {format_ns(result.stall_max_ns)}"),
        ("workload accesses", f"{result.accesses:,}",
         f"{result.tlb_misses:,} TLB refills, {result.stale_hits:,} through stale entries"),
        ("events", f"{result.events:,}", ""),
    ]
    if scenario.migration.caller is Caller.NUMA_BALANCING:
        rows[3:3] = [
            ("PTEs made PROT_NONE", f"{result.numa_pte_updates:,}", "numa_pte_updates"),
            ("NUMA hinting faults", f"{result.numa_hint_faults:,}",
             f"numa_hint_faults; {result.numa_hint_faults_local:,} on a folio already "
             "local (numa_hint_faults_local)"),
            ("local flushes", f"{result.nr_tlb_local_flush_all:,} full",
             f"nr_tlb_local_flush_all; {result.nr_tlb_local_flush_one:,} entries one by one "
             "(nr_tlb_local_flush_one)"),
        ]
    if result.ordering_violations or result.lost_writes:
        rows.insert(0, ("ORDERING RULE BROKEN", f"{result.ordering_violations:,} copies",
                        f"started while a TLB flush was pending; {result.lost_writes:,} "
                        "writes through stale entries lost (at least)"))
    width = max(len(r[0]) for r in rows)
    lines = [f"migviz run {result.scenario} · {result.mode} ({kernel})", _describe(scenario),
             ""]
    lines += [f"  {name:<{width}}  {value:>12}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def _change(before: float, after: float) -> str:
    if before == 0:
        return "—" if after == 0 else "new"
    return f"{(after - before) / before * 100:+.1f}%"


def percent_change(before: float, after: float) -> str:
    """``after`` against ``before`` as the comparison tables print it: +50.3%, -75.0%, "—"
    (both 0) or "new" (from 0). The closing chart prints its changes with it."""
    return _change(before, after)


def _count(value: float) -> str:
    return f"{value:,.0f}"


# Figures of `migviz run --json` as the comparison tables show them: label and format, by key.
METRICS: dict[str, tuple[str, Callable[[float], str]]] = {
    "nr_tlb_remote_flush_received": ("IPIs delivered (TLB row)", _count),
    "nr_tlb_remote_flush": ("shootdown rounds", _count),
    "nr_tlb_local_flush_all": ("local flushes (full)", _count),
    "nr_tlb_local_flush_one": ("local flushes (entries)", _count),
    "numa_hint_faults": ("NUMA hinting faults", _count),
    "pages_per_sec": ("pages per second", format_count),
    "sim_time_ns": ("simulated time", format_ns),
    "pgmigrate_success": ("pages migrated", _count),
    "pgmigrate_fail": ("pages failed", _count),
    "ipis_per_page": ("IPIs per page", lambda v: f"{v:.3f}"),
    "retries": ("retries", _count),
    "stall_p50_ns": ("workload stall p50", format_ns),
    "stall_p99_ns": ("workload stall p99", format_ns),
    "stalls": ("workload stalls", _count),
    "tlbi_broadcasts": ("broadcast invalidations", _count),
    "sync_waits": ("broadcast waits (DSB/TLBSYNC)", _count),
    "time_flush_ns": ("time flushing", format_ns),
    "time_copy_ns": ("time copying", format_ns),
    "workload_accesses_per_sec": ("workload accesses/s", format_count),
}


def _metrics(*keys: str) -> list[tuple[str, str, Callable[[float], str]]]:
    """(label, key, format) rows of these figures, in this order."""
    return [(METRICS[key][0], key, METRICS[key][1]) for key in keys]


def broadcasts(*runs: RunSummary) -> bool:
    """Whether the runs flush by broadcast (arm64 TLBI, AMD INVLPGB): they send no IPIs, so
    their invalidations and waits stand where IPIs would."""
    return any(run.arch != Arch.X86_IPI and run.tlbi_broadcasts > 0 for run in runs)


def compare_headline(serial: RunSummary, batched: RunSummary) -> str:
    """The comparison in one sentence, as `migviz compare` ends and the closing chart heads:
    the pages/s ratio and the change in IPIs (with a broadcast mechanism: in its waits)."""
    speedup = batched.pages_per_sec / serial.pages_per_sec if serial.pages_per_sec else 0
    key, what = ("sync_waits", METRICS["sync_waits"][0]) if broadcasts(serial, batched) \
        else ("nr_tlb_remote_flush_received", "TLB-shootdown IPIs")
    before, after = getattr(serial, key), getattr(batched, key)
    fewer = -float(_change(before, after).rstrip("%")) if before else 0.0
    ipis = f"{fewer:.1f}% fewer" if fewer >= 0 else f"{-fewer:.1f}% more"
    return f"batched migrates {speedup:.2f}× as many pages per second with {ipis} {what}"


def format_compare(results: dict[str, RunSummary], scenario: Scenario) -> str:
    """Serial and batched side by side, with the change in percent."""
    serial, batched = results["serial"], results["batched"]
    rows = _metrics("nr_tlb_remote_flush_received", "nr_tlb_remote_flush", "pages_per_sec",
                    "sim_time_ns", "pgmigrate_success", "pgmigrate_fail", "ipis_per_page",
                    "retries", "stall_p50_ns", "stall_p99_ns", "stalls")
    numa = scenario.migration.caller is Caller.NUMA_BALANCING
    if numa:
        rows[2:2] = _metrics("nr_tlb_local_flush_all", "nr_tlb_local_flush_one",
                             "numa_hint_faults")
    lines = [f"migviz compare {scenario.name}: serial (Linux 6.2) vs batched (Linux 6.3)",
             _describe(scenario), "",
             f"  {'metric':<26}{'serial':>14}{'batched':>14}{'change':>10}"]
    for label, key, fmt in rows:
        lines.append(f"  {label:<26}{fmt(getattr(serial, key)):>14}{fmt(getattr(batched, key)):>14}"
                     f"{_change(getattr(serial, key), getattr(batched, key)):>10}")
    lines += ["", f"  {compare_headline(serial, batched)}"]
    if numa:
        lines += textwrap.wrap(
            "Each call moves one folio, so 6.3 has nothing to batch: a PROT_NONE base page "
            "needs no flush in either kernel, a THP's PMD one round in both. Only a fault "
            "taken while a scan's own flush is still pending flushes otherwise: 6.2 one page, "
            "6.3 the whole TLB (arch_tlbbatch_flush). Which faults land there differs from run "
            "to run, and so do the totals.", width=92, initial_indent="  ",
            subsequent_indent="  ")
    return "\n".join(lines)



def format_bench(result: dict[str, Any], scenario: Scenario) -> str:
    """Model against the seed, metric by metric."""
    serial_run, batched_run = result["serial"], result["batched"]
    serial, batched = serial_run.summary, batched_run.summary
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

    row("IPIs delivered (/proc/interrupts TLB)", f"{serial.nr_tlb_remote_flush_received:,}",
        f"{batched.nr_tlb_remote_flush_received:,}", f"-{result['ipi_reduction_pct']:.2f}%",
        "ipi_reduction_pct")
    row("IPI rounds (nr_tlb_remote_flush)", f"{serial.nr_tlb_remote_flush:,}",
        f"{batched.nr_tlb_remote_flush:,}", f"-{result['rounds_reduction_pct']:.2f}%")
    row("pages migrated during the test", f"{serial_run.pages_migrated:,}",
        f"{batched_run.pages_migrated:,}", "")
    row("pages migrated per second", format_count(serial.pages_per_sec),
        format_count(batched.pages_per_sec), f"+{result['throughput_gain_pct']:.1f}%",
        "throughput_gain_pct")
    row("IPIs per migrated page", f"{serial.ipis_per_page:.3f}",
        f"{batched.ipis_per_page:.4f}", f"-{result['ipi_per_page_reduction_pct']:.2f}%")
    row("workload accesses per second", format_count(serial.workload_accesses_per_sec),
        format_count(batched.workload_accesses_per_sec),
        f"{result['workload_gain_pct']:+.1f}%")
    row("flush share of migrate_pages cycles", f"{serial.flush_share_pct:.1f}%",
        f"{batched.flush_share_pct:.1f}%", "", "serial_flush_share_pct")
    row("copy share of migrate_pages cycles", f"{serial.copy_share_pct:.1f}%",
        f"{batched.copy_share_pct:.1f}%", "", "batched_copy_share_pct")
    row("unmap+flush share of migrate_pages", f"{serial.unmap_flush_share_pct:.1f}%",
        f"{batched.unmap_flush_share_pct:.1f}%", "", "batched_unmap_flush_share_pct")
    for label, key in (("workload stall p50", "stall_p50_ns"), ("workload stall p99", "stall_p99_ns"),
                       ("workload stall max", "stall_max_ns")):
        row(label, format_ns(getattr(serial, key)), format_ns(getattr(batched, key)), "")
    row("workload stalls", f"{serial.stalls:,}", f"{batched.stalls:,}", "")
    row("sync fallback folios / their rounds", "",
        f"{batched.sync_fallback_folios:,} / {batched.fallback_flush_rounds:,}", "")
    lines = [f"migviz bench {scenario.name}: serial (Linux 6.2) vs batched (Linux 6.3) beside "
             "the seed's figures",
             f"a test of {format_ns(result['duration_ns'])} in each mode: "
             f"{_describe(scenario, moves=False)}"
             f" (moved back and forth until the test ends: {serial_run.moves_started} "
             f"move{'s' if serial_run.moves_started != 1 else ''} started serially, "
             f"{batched_run.moves_started} batched)", "", header_row, *rows, ""]
    lines.append("  seed: Huang Ying's cover letter and profile (docs/kernel.md §8). Counts are "
                 "during the test, as the seed's 'during the test'\n  (per page the IPI reduction "
                 "is larger: batched moved more pages in the same time). Shares are of "
                 "migrate_pages() CPU time\n  (isolation and sleeping excluded); change = batched "
                 "against serial. Calibration: docs/calibration.md")
    verdict = ("all headline figures in range" if result["all_within_range"]
               else "SOME FIGURES OUT OF RANGE")
    lines.append(f"  {verdict}; wall time {result['wall_s']:.1f} s for "
                 f"{format_ns(result['sim_time_ns'])} of simulated time (both modes)")
    return "\n".join(lines)


def format_sweep(rows: list[SweepRow], scenario: Scenario, wall: float) -> str:
    """One line per value of the swept field."""
    field = rows[0].field if rows else "?"
    mode = rows[0].summary.mode if rows else "?"
    lines = [f"migviz bench {scenario.name} --sweep {field} ({mode})", _describe(scenario), "",
             f"  {'value':>8}{'IPIs':>12}{'rounds':>10}{'pages/s':>11}{'stall p50':>12}"
             f"{'stall p99':>12}{'stall max':>12}{'stalls':>9}"]
    for row in rows:
        run = row.summary
        lines.append(f"  {row.value!s:>8}{run.nr_tlb_remote_flush_received:>12,}"
                     f"{run.nr_tlb_remote_flush:>10,}{format_count(run.pages_per_sec):>11}"
                     f"{format_ns(run.stall_p50_ns):>12}{format_ns(run.stall_p99_ns):>12}"
                     f"{format_ns(run.stall_max_ns):>12}{run.stalls:>9,}")
    lines += ["", f"  wall time {wall:.1f} s. Larger batches mean fewer IPIs but folios stay "
              "unmapped longer: threads that touch them wait (stall p99)."]
    return "\n".join(lines)


def format_costs(width: int) -> str:
    """Every cost parameter with its default and its source, wrapped to ``width`` columns."""
    lines = []
    for name, (default, source) in cost_sources().items():
        wrapped = textwrap.wrap(source, width - 35)
        lines.append(f"{name:<22}{default:>8} ns  {wrapped[0] if wrapped else ''}")
        lines.extend(f"{'':<35}{line}" for line in wrapped[1:])
    lines += ["", "docs §N = docs/kernel.md, section N; [I] = inferred. Derivations and "
              "confidence: docs/calibration.md. Override any of them in a scenario's [costs] "
              "table or with --set costs.NAME=VALUE."]
    return "\n".join(lines)


_AGAINST_ROWS = (
    ("unmapped_ptes", "migration entries set"),
    ("restored_ptes", "entries removed"),
    ("rounds", "shootdown sends"),
    ("deliveries", "remote shootdowns"),
    ("pages_per_round", "pages: per send"),
    ("full_flushes", "full flushes sent"),
    ("receipt_pages", "pages: on receivers"),
    ("pgmigrate_success", "nr_succeeded"),
    ("pgmigrate_fail", "nr_failed"),
)


def _cell(value: object) -> str:
    if isinstance(value, list):
        if len(value) > 4:
            counts = Counter(value)
            return " ".join(f"{v}×{n}" for v, n in sorted(counts.items()))
        return " ".join(str(v) for v in value) or "—"
    return f"{value:,}" if isinstance(value, int) else str(value)


def format_against(result: dict[str, Any]) -> str:
    """`migviz replay FILE --against-model`: per call, the kernel's counts beside the model's."""
    out = [f"{result['source']}: each migrate_pages() call beside the model "
           "(the scenario built from the call)"]
    calls = result["calls"]
    if not calls:
        out.append("no call in this trace unmapped a page: nothing to set beside the model")
    for call in calls:
        lazy = f", lazy {', '.join(map(str, call['lazy']))}" if call["lazy"] else ""
        mask = ", ".join(map(str, call["mask"])) or "none"
        out += ["", f"call {call['call']}: {call['task']} on CPU {call['cpu']}, {call['mode']} "
                f"{call['reason']}; modelled {call['shape']}, mask CPUs {mask}{lazy}",
                f"  {'':<22}{'kernel':>14}{'model':>14}"]
        for key, label in _AGAINST_ROWS:
            kernel, model = _cell(call["kernel"][key]), _cell(call["model"][key])
            mark = "" if key in call["agree"] else "  ≠"
            out.append(f"  {label:<22}{kernel:>14}{model:>14}{mark}")
        out += [f"  why: {why}" for why in call["why"]]
    if result["calls_without_unmaps"]:
        numbers = ", ".join(map(str, result["calls_without_unmaps"]))
        out += ["", f"calls that unmapped nothing (every page failed before its unmap): {numbers}"]
    if result["unfinished_calls"]:
        out.append("calls still running when the trace ends: "
                   + ", ".join(map(str, result["unfinished_calls"])))
    return "\n".join(out)


def format_recipe(result: dict[str, Any], scenario: Scenario) -> str:
    """`migviz bench SCENARIO` for a scenario with published figures: each beside the model's."""
    out = [f"migviz bench {scenario.name}: {scenario.description}", "",
           f"  {'figure':<34}{'model':>10}{'published':>11}{'range':>16}{'in range?':>11}"]
    for row in result["figures"]:
        unit = row["unit"]

        def shown(value: float, unit: str = unit) -> str:
            return f"{value:.2f}{'' if unit == 'GB/s' else unit}"

        bounds = f"{row['low']:g}..{row['high']:g}"
        out.append(f"  {row['name']:<34}{shown(row['model']):>10}{shown(row['published']):>11}"
                   f"{bounds:>16}{'yes' if row['in_range'] else 'NO':>11}")
    out.append("")
    sources = list(dict.fromkeys(row["source"] for row in result["figures"]))
    for source in sources:
        out.append(textwrap.fill(f"source: {source}", width=100, initial_indent="  ",
                                 subsequent_indent="    "))
    if result["why_outside"]:
        out += ["", textwrap.fill(f"Outside the range, and why: {result['why_outside']}.",
                                  width=100, initial_indent="  ", subsequent_indent="  ")]
    out += ["", f"  runs: {', '.join(result['runs'])}; wall time {result['wall_s']:.1f} s"]
    return "\n".join(out)


def format_versus(a: RunSummary, b: RunSummary, label_a: str, label_b: str,
                  first: Scenario, second: Scenario) -> str:
    """Any two configurations side by side: B's change against A."""
    rows = _metrics("sim_time_ns", "pages_per_sec", "pgmigrate_success",
                    "nr_tlb_remote_flush_received", "nr_tlb_remote_flush", "tlbi_broadcasts",
                    "sync_waits", "time_flush_ns", "time_copy_ns", "workload_accesses_per_sec",
                    "stall_p99_ns")
    width = 14
    lines = [f"migviz compare: A = {label_a}", f"                B = {label_b}",
             f"  A: {a.mode}, {first.topology.arch.value}, copy {first.migration.copy_engine}"
             f"; B: {b.mode}, {second.topology.arch.value}, copy "
             f"{second.migration.copy_engine}", "",
             f"  {'metric':<31}{'A':>{width}}{'B':>{width}}{'change':>10}"]
    for label, key, fmt in rows:
        lines.append(f"  {label:<31}{fmt(getattr(a, key)):>{width}}{fmt(getattr(b, key)):>{width}}"
                     f"{_change(getattr(a, key), getattr(b, key)):>10}")
    speedup = b.pages_per_sec / a.pages_per_sec if a.pages_per_sec else 0.0
    lines += ["", f"  B migrates {speedup:.2f}× as many pages per second as A"]
    return "\n".join(lines)
