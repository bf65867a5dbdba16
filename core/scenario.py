"""Scenarios: validated, frozen descriptions of a machine, a workload and a migration job.

A scenario is a TOML file (see README "Scenario format"). Built-ins ship in ``core/scenarios`` and
are addressed by name; any path to a ``.toml`` file works too. Every problem with one — a missing
file, a TOML syntax error, an unknown key, a wrong type, an impossible value — raises
:class:`ScenarioError` whose message names the file, the field and the reason.
"""

from __future__ import annotations

import difflib
import functools
import stat
import tomllib
from collections.abc import Iterable, Sequence
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from core.costs import Costs

BUILTIN_DIR = "scenarios"

# Simulated time is kept in 64-bit nanoseconds: bounds that keep every sum of times far from
# overflowing, yet far above anything migrate_pages() does (its dearest default cost is 20 us).
MAX_COST_NS = 10**9  # one second for one action
MAX_INTERVAL_NS = 10**15  # 11.6 days between two accesses: "never again" in any run
MAX_PAGES = 1 << 24  # 64 GiB of base pages in all; the engine keeps a few arrays per page


class ScenarioError(Exception):
    """Bad scenario input. The message is one line meant for the user, naming file, field, reason."""


class Mode(StrEnum):
    """The two shapes of migrate_pages() the engine simulates."""

    SERIAL = "serial"  # Linux 6.2: per folio unmap, flush, copy, remap
    BATCHED = "batched"  # Linux 6.3: unmap a batch, flush once, move the batch


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Arch(StrEnum):
    """How the machine makes other CPUs forget a page (core/flush.py)."""

    X86_IPI = "x86-ipi"  # IPIs to mm_cpumask and TLB generations (x86 up to 6.14)
    X86_INVLPGB = "x86-invlpgb"  # AMD broadcast INVLPGB + TLBSYNC for a process on >= 3 CPUs
    ARM64_TLBI = "arm64-tlbi"  # broadcast TLBI + DSB ISH; batched from Linux 6.5


class Topology(_Section):
    """The machine: NUMA nodes and CPUs (CPUs 0..cpus-1, spread evenly over the nodes)."""

    arch: Arch = Field(Arch.X86_IPI, description="flush mechanism: x86-ipi, x86-invlpgb or "
                       "arm64-tlbi")

    nodes: int = Field(2, ge=2, le=64, description="NUMA nodes; folios move between node 0 and 1")
    cpus: int = Field(8, ge=1, le=1024, description="CPUs, numbered 0..cpus-1")
    tlb_entries: int = Field(
        1536, ge=1, le=1 << 24,
        description="TLB entries each CPU holds for the workload, the least recently used "
        "evicted first: 1536 is the second-level TLB (STLB) of Intel's Skylake-SP and Cascade "
        "Lake server cores (Intel's optimization reference manual; docs §9)",
    )

    def node_of_cpu(self, cpu: int) -> int:
        """Node of a CPU: contiguous, even spread (CPUs 0..k-1 on node 0, and so on)."""
        return cpu * self.nodes // self.cpus


class FolioGroup(_Section):
    """A run of folios of one order, migrated in list order."""

    order: int = Field(ge=0, le=9, description="0 = 4 KiB base page, 9 = 2 MiB PMD-mapped THP")
    count: int = Field(ge=1, le=1 << 20, description="how many folios of this order")


class Memory(_Section):
    """The workload's folios, all starting on node 0."""

    folios: tuple[FolioGroup, ...] = Field(min_length=1)

    @property
    def total_folios(self) -> int:
        return sum(group.count for group in self.folios)

    @property
    def total_pages(self) -> int:
        return sum(group.count << group.order for group in self.folios)


class Workload(_Section):
    """The pmbench-like process whose pages move; its threads run on CPUs 0..threads-1, or on
    the CPUs listed in ``cpus``."""

    threads: int = Field(6, ge=0, description="threads on CPUs 0..threads-1 (they form mm_cpumask)")
    cpus: tuple[int, ...] = Field(
        (), description="the CPUs the threads run on, one per thread (default 0..threads-1)"
    )
    lazy_cpus: tuple[int, ...] = Field((), description="workload CPUs in lazy-TLB mode")
    access_interval_ns: int = Field(200, ge=1, le=MAX_INTERVAL_NS,
                                    description="time between two accesses of a thread")
    write_ratio: float = Field(0.5, ge=0.0, le=1.0, description="fraction of accesses that write")

    @property
    def thread_cpus(self) -> tuple[int, ...]:
        """The CPU of each thread."""
        return self.cpus if self.cpus else tuple(range(self.threads))


class Caller(StrEnum):
    """Who calls migrate_pages()."""

    MIGRATEPAGES = "migratepages"  # a task of its own moves every folio, node to node
    NUMA_BALANCING = "numa-balancing"  # the process's threads move what they fault on


class Migration(_Section):
    """The migrating task, like numactl's `migratepages`."""

    # `copy` is the TOML key; the field is copy_engine (BaseModel has a copy()). A dump without
    # aliases must still load.
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    mode: Mode = Field(Mode.BATCHED, description='"serial" (Linux 6.2) or "batched" (Linux 6.3)')
    caller: Caller = Field(
        Caller.MIGRATEPAGES,
        description='"migratepages": a task on initiator_cpu moves the folios back and forth '
        '(MIGRATE_SYNC, MR_SYSCALL); "numa-balancing": the workload\'s threads migrate the '
        "folios they take NUMA hinting faults on, one per migrate_pages() call (MIGRATE_ASYNC, "
        "MR_NUMA_MISPLACED), after task_numa_work() made them PROT_NONE ([numa])",
    )
    initiator_cpu: int = Field(7, ge=0, description="CPU the migrating task runs on "
                               "(migratepages only)")
    moves: int = Field(2, ge=1, le=1000, description="one-way moves: 1 = node 0 -> 1, 2 = back too")
    batch_pages: int = Field(
        512, ge=1, le=1 << 20,
        description="NR_MAX_BATCHED_MIGRATION in base pages (HPAGE_PMD_NR = 512 on x86-64)",
    )
    contention: float = Field(
        0.0, ge=0.0, le=1.0,
        description="probability that one attempt finds the folio locked (trylock fails: -EAGAIN "
        "in async passes, a lock wait in sync passes)",
    )
    move_contention: float = Field(
        0.0, ge=0.0, le=1.0,
        description="probability that one move attempt finds an extra reference "
        "(folio_migrate_mapping: -EAGAIN, the folio stays unmapped)",
    )
    writeback: float = Field(
        0.0, ge=0.0, le=1.0,
        description="probability that one attempt finds the folio under writeback "
        "(-EBUSY in async passes, a wait in MIGRATE_SYNC)",
    )
    copy_engine: str = Field(
        "cpu", alias="copy", description='who copies the contents in a batched move: "cpu" (folio_copy() on '
        'the migrating CPU, as 6.3), "mtcopy:N" (N kernel threads) or "dma:N" (N DMA channels), '
        "the copy-offload series' batch copy; N = 1, 4 or 16 as published (core/copy.py)",
    )

    @field_validator("copy_engine")
    @classmethod
    def _known_copy_engine(cls, value: str) -> str:
        from core.copy import parse_engine

        parse_engine(value)
        return value

    skip_flush: bool = Field(
        False,
        description="TEACHING ONLY: unmap without ever flushing TLBs, which breaks the ordering "
        "rule; CPUs keep writing to the old page through stale entries after it was copied "
        "(lost writes). No kernel does this.",
    )
    enomem: float = Field(
        0.0, ge=0.0, le=1.0,
        description="probability that get_new_folio() fails (-ENOMEM: a THP splits, a base folio "
        "ends the migrate_pages() call)",
    )


class Numa(_Section):
    """NUMA balancing's scanner (caller = "numa-balancing"): task_numa_work() makes the next
    stretch of the map PROT_NONE, one scan period after another, and flushes it."""

    scan_period_ns: int = Field(
        200_000, ge=1, le=MAX_INTERVAL_NS,
        description="time between two scans (the kernel's numa_balancing_scan_period_min_ms is "
        "1 s; the model compresses time so that a short run scans the whole map)",
    )
    scan_pages: int = Field(
        64, ge=1, le=1 << 24,
        description="base pages made PROT_NONE per scan (the kernel scans 256 MiB per period, "
        "numa_balancing_scan_size_mb; compressed likewise)",
    )
    passes: int = Field(1, ge=1, le=100, description="scans over the whole map")


class Scenario(_Section):
    """One complete, validated scenario."""

    name: str = Field(min_length=1)
    description: str = ""
    seed: int = Field(1, ge=0, lt=1 << 64, description="seeds every random choice (64 bits)")
    topology: Topology = Topology()
    memory: Memory = Memory(folios=(FolioGroup(order=0, count=96),))
    workload: Workload = Workload()
    migration: Migration = Migration()
    numa: Numa = Numa()
    costs: Costs = Costs()

    @model_validator(mode="after")
    def _check_cross_fields(self) -> Scenario:
        cpus = self.topology.cpus
        if self.migration.initiator_cpu >= cpus:
            raise ValueError(
                f"migration.initiator_cpu: {self.migration.initiator_cpu} is not a CPU "
                f"(topology.cpus = {cpus}, so CPUs are 0..{cpus - 1})"
            )
        if self.workload.threads > cpus:
            raise ValueError(
                f"workload.threads: {self.workload.threads} threads need that many CPUs "
                f"but topology.cpus = {cpus}"
            )
        work = self.workload
        if work.cpus:
            if len(work.cpus) != work.threads:
                raise ValueError(
                    f"workload.cpus: lists {len(work.cpus)} CPUs for {work.threads} threads "
                    "(give one CPU per thread)"
                )
            if len(set(work.cpus)) != len(work.cpus):
                raise ValueError("workload.cpus: a CPU is listed twice (one thread per CPU)")
            for cpu in work.cpus:
                if not 0 <= cpu < cpus:
                    raise ValueError(
                        f"workload.cpus: {cpu} is not a CPU (topology.cpus = {cpus}, "
                        f"so CPUs are 0..{cpus - 1})"
                    )
        for cpu in work.lazy_cpus:
            if cpu not in work.thread_cpus:
                raise ValueError(
                    f"workload.lazy_cpus: CPU {cpu} runs no workload thread "
                    f"(threads run on CPUs {_cpu_list(work.thread_cpus)})"
                )
        initiator = self.migration.initiator_cpu
        if initiator in work.thread_cpus and self.migration.caller is Caller.MIGRATEPAGES:
            # The migrating task is modelled like `migratepages`: a task of its own on a CPU of
            # its own, never in the workload's mm_cpumask (a thread there would be neither
            # interrupted nor flushed). NUMA balancing, where a thread migrates what it faulted
            # on, is another model.
            raise ValueError(
                f"migration.initiator_cpu: CPU {initiator} runs a workload thread "
                f"(workload.threads and workload.cpus put threads on CPUs "
                f"{_cpu_list(work.thread_cpus)}); "
                "migviz runs the migrating task on a "
                "CPU of its own, like migratepages, never in the workload's mm_cpumask: pick a "
                "CPU with no thread"
            )
        if self.migration.caller is Caller.NUMA_BALANCING and \
                self.topology.arch is not Arch.X86_IPI:
            raise ValueError(
                f'topology.arch: "{self.topology.arch.value}" is not modelled for caller = '
                '"numa-balancing" (its scans flush with x86 IPIs and TLB generations); use '
                '"x86-ipi"'
            )
        if self.migration.caller is Caller.NUMA_BALANCING:
            for knob in ("contention", "move_contention", "writeback", "enomem", "skip_flush"):
                if getattr(self.migration, knob):
                    raise ValueError(
                        f'migration.{knob}: not modelled for caller = "numa-balancing" (each '
                        "fault migrates one folio, MIGRATE_ASYNC, without failures); set it "
                        "for a migratepages scenario, or leave it out"
                    )
        if self.migration.caller is Caller.NUMA_BALANCING and not any(
                cpu not in work.lazy_cpus for cpu in work.thread_cpus):
            raise ValueError(
                'migration.caller: "numa-balancing" needs a running workload thread (the '
                "threads scan and fault; workload.threads is "
                f"{work.threads}, lazy CPUs {_cpu_list(work.lazy_cpus)})"
            )
        if self.topology.nodes > cpus:
            raise ValueError(
                f"topology.nodes: {self.topology.nodes} nodes need at least as many CPUs "
                f"(topology.cpus = {cpus})"
            )
        if self.memory.total_pages > MAX_PAGES:
            raise ValueError(
                f"memory.folios: {self.memory.total_pages:,} pages in all; migviz simulates at "
                f"most {MAX_PAGES:,} (64 GiB of 4 KiB pages)"
            )
        for name, value in self.costs:
            if value > MAX_COST_NS:
                raise ValueError(f"costs.{name}: {value:,} ns is more than a second; every cost "
                                 f"is at most {MAX_COST_NS:,} ns")
        return self


def _cpu_list(cpus: tuple[int, ...]) -> str:
    if not cpus:
        return "none"
    if cpus == tuple(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}..{cpus[-1]}"
    return ", ".join(map(str, cpus))


# ---------------------------------------------------------------------------------------------
# Loading


@functools.cache
def builtin_names() -> tuple[str, ...]:
    """Names of the scenarios shipped with migviz, in a teaching order (read once)."""
    order = ["tiny", "default", "contended", "thp", "large", "pmbench-2s", "no-flush",
             "numa-balancing", "arm64-128", "invlpgb", "copy-offload"]
    found = sorted(
        entry.name.removesuffix(".toml")
        for entry in resources.files("core").joinpath(BUILTIN_DIR).iterdir()
        if entry.name.endswith(".toml")
    )
    return tuple([n for n in order if n in found] + [n for n in found if n not in order])


def builtin_text(name: str) -> str:
    """The TOML text of a built-in scenario."""
    return resources.files("core").joinpath(BUILTIN_DIR, f"{name}.toml").read_text("utf-8")


def scenario_source(spec: str) -> tuple[str, str]:
    """Resolve a name or path to (label for messages, TOML text)."""
    if spec in builtin_names():
        return f"built-in scenario '{spec}'", builtin_text(spec)
    looks_like_path = spec.endswith(".toml") or "/" in spec or "\\" in spec
    path = Path(spec)
    if looks_like_path or path.exists():
        return spec, _read_text(path, spec)
    close = difflib.get_close_matches(spec, builtin_names(), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    raise ScenarioError(
        f"unknown scenario '{spec}' (built-ins: {', '.join(builtin_names())}; "
        f"or give a path to a .toml file){hint}"
    )


def _read_text(path: Path, spec: str) -> str:
    """A scenario file's text. Pipes are welcome (`migviz run <(sed ... default.toml)`) and read
    once; devices are not (/dev/zero would never end)."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise ScenarioError(f"{spec}: no such file") from None
    except OSError as err:
        raise ScenarioError(f"{spec}: cannot read: {err.strerror or err}") from None
    if stat.S_ISDIR(mode):
        raise ScenarioError(f"{spec}: is a directory, not a scenario file")
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        raise ScenarioError(f"{spec}: not a regular file (a device?), not a scenario file")
    try:
        with path.open("rb") as stream:
            raw = stream.read()
    except OSError as err:
        raise ScenarioError(f"{spec}: cannot read: {err.strerror or err}") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{spec}: not UTF-8 text (byte {raw[err.start]:#04x} at offset "
                            f"{err.start}); a scenario is a TOML text file") from None


def parse_override(text: str, option: str = "--set") -> tuple[tuple[str, ...], Any]:
    """Parse one ``--set section.key=value``; the value is TOML, or a bare string. ``option``
    names the command-line option it came from in errors."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    path = tuple(part.strip() for part in key.split("."))
    if not sep or not all(path):
        raise ScenarioError(f"{option} {text}: expected section.key=value, e.g. "
                            "migration.mode=serial")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str],
                    option: str = "--set") -> dict[str, Any]:
    """Return a copy of raw scenario data with each ``section.key=value`` applied."""
    result: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in data.items()}
    for text in overrides:
        path, value = parse_override(text, option)
        target = result
        for part in path[:-1]:
            node = target.setdefault(part, {})
            if not isinstance(node, dict):
                raise ScenarioError(f"{option} {text}: '{part}' is not a section")
            target = node
        target[path[-1]] = value
    return result


def load_scenario(spec: str, overrides: Sequence[str] = (), option: str = "--set") -> Scenario:
    """Load a scenario by built-in name or path, apply ``--set`` overrides, and validate it
    (errors name ``option`` as where an override came from)."""
    label, text = scenario_source(spec)
    return parse_scenario(text, label, overrides, option)


def parse_scenario(text: str, label: str, overrides: Sequence[str] = (),
                   option: str = "--set") -> Scenario:
    """Parse a scenario's TOML text, apply ``--set`` overrides, and validate it as user input."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{label}: TOML syntax error: {err}") from None
    data = apply_overrides(data, overrides, option)
    overridden = {".".join(parse_override(text, option)[0]) for text in overrides}
    return user_scenario(data, label, overridden, option)


def user_scenario(data: dict[str, Any], label: str = "scenario",
                  overridden: set[str] | None = None, option: str = "--set") -> Scenario:
    """Validate a scenario someone wrote (a file, --set, --sweep)."""
    return scenario_from_dict(data, label, overridden, option)


def _from_set(field: str, overridden: set[str]) -> bool:
    """Did a --set give this field, or the table it is in?"""
    return any(field == key or field.startswith(key + ".") for key in overridden)


def scenario_from_dict(data: dict[str, Any], label: str = "scenario",
                       overridden: set[str] | None = None, option: str = "--set") -> Scenario:
    """Validate raw data into a Scenario, turning pydantic errors into one ScenarioError."""
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(f"{label}: {_describe(err, overridden or set(), option)}") from None


def _describe(err: ValidationError, overridden: set[str], option: str = "--set") -> str:
    """The errors on one line, each naming the field path and the reason."""
    lines = []
    errors = err.errors()
    locs = [tuple(item["loc"]) for item in errors]
    for item in errors:
        here = tuple(item["loc"])
        if any(other != here and other[: len(here)] == here for other in locs):
            continue  # a container whose item already has its own, more precise error
        loc = ".".join(str(part) for part in here)
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            message = "unknown key" + _did_you_mean(item["loc"])
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        elif item["type"] == "missing":
            message = "required key is missing"
        elif item["type"] in ("model_type", "dict_type", "model_attributes_type"):
            message = "must be a table (a [section] or {key = value, ...})"
        elif item["type"] in ("tuple_type", "list_type"):
            message = "must be a list [...]"
        elif item["type"] == "too_short":
            message = "must not be empty"
        if "input" in item and item["type"] not in ("extra_forbidden", "missing") and loc:
            message += f" (got {item['input']!r})"
        text = f"{loc}: {message}" if loc else message
        field = text.split(":")[0]
        unknown = item["type"] == "extra_forbidden"
        # A rule between fields names the others it involves: any of them may come from --set.
        named = any(key in text for key in overridden if "." in key)
        if _from_set(field, overridden) or named or (unknown and any(
                key.startswith(field + ".") for key in overridden)):
            text += f" [from {option}]"
        lines.append(text)
    return "; ".join(lines)


def _did_you_mean(loc: tuple[int | str, ...]) -> str:
    """Suggest the closest known field name for an unknown key."""
    model: type[BaseModel] = Scenario
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(str(part))
        annotation: Any = field.annotation if field else None
        inner: Any = getattr(annotation, "__args__", (annotation,))[0] if annotation else None
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            model = annotation
        elif isinstance(inner, type) and issubclass(inner, BaseModel):
            model = inner
        else:
            return ""
    close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


def to_toml(scenario: Scenario) -> str:
    """Serialise a scenario back to TOML (for `scenarios show` with overrides). tomli-w does
    the quoting: a description with a newline or a quote stays valid TOML."""
    data = scenario.model_dump(mode="json", by_alias=True)
    ordered = {key: data[key] for key in ("name", "description", "seed")}
    for section in ("topology", "memory", "workload", "migration", "numa", "costs"):
        ordered[section] = data[section]
    return tomli_w.dumps(ordered)
