"""Predict, then reveal: OSTEP-style questions on small random scenarios, with the engine as the
oracle (`migviz quiz`).

Each question states its whole setup in words (the CPUs the process runs on, the folios, the
mode, the batch size), names one key of `migviz run --json` as its metric, and takes its answer
from that run's summary, never from arithmetic. The explanation works the answer out by the
kernel's rules (one round per PTE serially, one deferred flush per batch, a THP's PMD flushed at
once, IPIs to the non-lazy CPUs of mm_cpumask); a question whose explanation would not reach the
engine's answer is never asked (the scenario is drawn again).

The same seed gives the same questions; question k of a seed does not depend on ``count``.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from core.bench import run_once
from core.scenario import Mode, Scenario, scenario_from_dict, to_toml

THP_ORDER = 9  # a PMD-mapped 2 MiB THP: one PMD, flushed at once when unmapped
THP_PAGES = 1 << THP_ORDER
CPUS = 8
REDRAWS = 20  # scenarios drawn for one question before giving up (none is ever refused)

Answer = int | tuple[int, ...]


class Kind(StrEnum):
    """What a question asks."""

    IPIS = "ipis"  # shootdown IPIs delivered in all
    ROUNDS = "rounds"  # shootdown rounds sent
    WHICH_CPUS = "which-cpus"  # which CPUs take the IPIs, and how many each
    UNMAPPED_AT_FLUSH = "unmapped-at-flush"  # pages behind migration entries at a batch's flush


# The key of `migviz run --json` that answers each kind.
METRIC: dict[Kind, str] = {
    Kind.IPIS: "nr_tlb_remote_flush_received",
    Kind.ROUNDS: "nr_tlb_remote_flush",
    Kind.WHICH_CPUS: "tlb_shootdowns",
    # Asked on one batch moved once with nothing failing: every page that batch unmapped before
    # its flush is then migrated, and only those, so the count of pages migrated is that number.
    Kind.UNMAPPED_AT_FLUSH: "pgmigrate_success",
}


@dataclass(frozen=True, slots=True)
class Setup:
    """The facts of a question's scenario, as the question states them."""

    thread_cpus: tuple[int, ...]  # one workload thread on each: they form mm_cpumask
    lazy: tuple[int, ...]  # CPUs of the mask in lazy-TLB mode (skipped by IPIs)
    initiator: int  # the CPU migratepages runs on
    folios: tuple[tuple[int, int], ...]  # (order, count) in list order: 0 or THP_ORDER
    mode: Mode
    batch_pages: int
    moves: int

    @property
    def targets(self) -> tuple[int, ...]:
        """The CPUs each round interrupts: the non-lazy CPUs of mm_cpumask."""
        return tuple(cpu for cpu in self.thread_cpus if cpu not in self.lazy)

    @property
    def orders(self) -> list[int]:
        return [order for order, count in self.folios for _ in range(count)]

    @property
    def thps(self) -> int:
        return self.orders.count(THP_ORDER)

    @property
    def base_pages(self) -> int:
        return self.orders.count(0)

    def batches(self) -> list[list[int]]:
        """The batches one move cuts (migrate_pages(): the folio that reaches batch_pages is
        included), as lists of folio orders."""
        cut: list[list[int]] = []
        batch: list[int] = []
        pages = 0
        for order in self.orders:
            batch.append(order)
            pages += 1 << order
            if pages >= self.batch_pages:
                cut.append(batch)
                batch, pages = [], 0
        if batch:
            cut.append(batch)
        return cut

    def scenario(self, name: str, description: str, seed: int) -> Scenario:
        """The scenario `migviz run` checks the answer on."""
        return scenario_from_dict({
            "name": name,
            "description": description,
            "seed": seed,
            "topology": {"nodes": 2, "cpus": CPUS},
            "memory": {"folios": [{"order": order, "count": count}
                                  for order, count in self.folios]},
            "workload": {"threads": len(self.thread_cpus), "cpus": list(self.thread_cpus),
                         "lazy_cpus": list(self.lazy), "access_interval_ns": 500},
            "migration": {"mode": self.mode.value, "initiator_cpu": self.initiator,
                          "moves": self.moves, "batch_pages": self.batch_pages},
        }, f"quiz scenario {name}")


@dataclass(frozen=True, slots=True)
class Question:
    """One question: its scenario and mode, the text a student reads, the `migviz run --json`
    key that answers it, the engine's answer, and why."""

    kind: Kind
    scenario: Scenario
    mode: Mode
    text: str
    metric: str
    answer: Answer
    explanation: str  # ends with "= <the answer>"

    def as_json(self) -> dict[str, Any]:
        """What `migviz quiz --json` prints for it."""
        return {"scenario": to_toml(self.scenario), "mode": self.mode.value,
                "question": self.text, "metric": self.metric,
                "answer": answer_json(self.answer), "explanation": self.explanation}


def answer_json(answer: Answer) -> int | list[int]:
    """An answer as JSON has it (and as `migviz run --json` prints the metric)."""
    return list(answer) if isinstance(answer, tuple) else answer


def answer_text(answer: Answer) -> str:
    """An answer as the quiz prints it: ``24``, or ``[0, 4, 4, 0]`` for a per-CPU row."""
    return json.dumps(answer_json(answer))


def make_quiz(seed: int, count: int) -> tuple[Question, ...]:
    """``count`` questions for ``seed``: every kind once in each run of four, in a seeded
    order."""
    kinds = random.Random(f"migviz-quiz:{seed}").sample(list(Kind), len(Kind))
    return tuple(make_question(seed, index, kinds[index % len(kinds)]) for index in range(count))


def make_question(seed: int, index: int, kind: Kind) -> Question:
    """Question ``index`` (0-based) of the quiz of ``seed``, of the given kind."""
    rng = random.Random(f"migviz-quiz:{seed}:{index}")
    name = f"quiz-{seed}-{index + 1}"
    for _ in range(REDRAWS):
        setup = draw_setup(kind, rng)
        scenario = setup.scenario(name, f"migviz quiz --seed {seed}, question {index + 1}",
                                  rng.randrange(1, 10_000))
        answer = oracle(scenario, setup.mode, METRIC[kind])
        expected, why = explain(kind, setup)
        if expected == answer:
            return Question(kind, scenario, setup.mode, ask(kind, setup), METRIC[kind],
                            answer, why)
    raise RuntimeError(f"quiz: no {kind.value} question whose explanation agrees with the "
                       f"engine (seed {seed}, question {index + 1})")


def oracle(scenario: Scenario, mode: Mode, metric: str) -> Answer:
    """What `migviz run --mode MODE --json` reports as ``metric`` (the same run)."""
    value = getattr(run_once(scenario, mode), metric)
    return tuple(value) if isinstance(value, tuple) else int(value)


# ---------------------------------------------------------------------------------------------
# Drawing a scenario: small, readable, and inside the rules the explanations state (x86 IPIs,
# base pages and PMD-mapped THPs only, nothing busy or failing).


def draw_setup(kind: Kind, rng: random.Random) -> Setup:
    """A random setup for a question of ``kind``."""
    threads = rng.randint(2, 6)
    if kind is Kind.WHICH_CPUS or rng.random() < 0.5:
        thread_cpus = tuple(sorted(rng.sample(range(CPUS), threads)))
    else:
        thread_cpus = tuple(range(threads))
    free = [cpu for cpu in range(CPUS) if cpu not in thread_cpus]
    initiator = CPUS - 1 if CPUS - 1 in free and rng.random() < 0.5 else rng.choice(free)
    lazy_odds = 0.6 if kind is Kind.WHICH_CPUS else 0.3
    lazy = (rng.choice(thread_cpus),) if threads >= 3 and rng.random() < lazy_odds else ()
    if kind is Kind.UNMAPPED_AT_FLUSH:
        # One batch moved once: base pages below the limit, and maybe a THP last, which
        # crosses the limit and so still belongs to the batch.
        batch_pages = rng.choice([512, 512, 8, 16])
        folios: tuple[tuple[int, int], ...] = ((0, rng.randint(2, min(12, batch_pages - 1))),)
        if rng.random() < 0.5:
            folios += ((THP_ORDER, 1),)
        return Setup(thread_cpus, lazy, initiator, folios, Mode.BATCHED, batch_pages, 1)
    batched_odds = {Kind.IPIS: 0.6, Kind.ROUNDS: 0.4, Kind.WHICH_CPUS: 0.5}[kind]
    mode = Mode.BATCHED if rng.random() < batched_odds else Mode.SERIAL
    batch_pages = rng.choice([512, 512, 4, 8]) if mode is Mode.BATCHED else 512
    return Setup(thread_cpus, lazy, initiator, draw_folios(rng), mode, batch_pages,
                 rng.choice([1, 2]))


def draw_folios(rng: random.Random) -> tuple[tuple[int, int], ...]:
    """One to three runs of base pages, sometimes with a THP between or after them."""
    folios: list[tuple[int, int]] = []
    for _ in range(rng.randint(1, 3)):
        if folios and rng.random() < 0.35:
            folios.append((THP_ORDER, 1))
        count = rng.randint(1, 8)
        if folios and folios[-1][0] == 0:  # two runs of base pages read as one
            folios[-1] = (0, folios[-1][1] + count)
        else:
            folios.append((0, count))
    if rng.random() < 0.2:
        folios.append((THP_ORDER, 1))
    return tuple(folios)


# ---------------------------------------------------------------------------------------------
# Words


def ask(kind: Kind, setup: Setup) -> str:
    """The question as a student reads it: the setup, then what to predict."""
    facts = describe(setup)
    if kind is Kind.IPIS:
        return f"{facts} How many TLB-shootdown IPIs are delivered in all?"
    if kind is Kind.ROUNDS:
        return (f"{facts} How many shootdown rounds (IPI broadcasts from CPU "
                f"{setup.initiator}) does migrate_pages() send in all?")
    if kind is Kind.WHICH_CPUS:
        return (f"{facts} Which CPUs receive shootdown IPIs, and how many each? Answer with the "
                f"TLB row of /proc/interrupts: {CPUS} counts, CPU 0 first, e.g. "
                f"[{', '.join(['n'] * CPUS)}].")
    return (f"{facts} When the batch's one deferred TLB flush is sent, how many pages are "
            f"unmapped (their PTEs replaced by migration entries)? Count 4 KiB pages: a THP is "
            f"{THP_PAGES}.")


def describe(setup: Setup) -> str:
    """The setup in two or three sentences."""
    threads = len(setup.thread_cpus)
    text = (f"A process has {threads} threads, on CPUs {cpu_words(setup.thread_cpus)} of an "
            f"{CPUS}-CPU, 2-node machine")
    if setup.lazy:
        text += f"; CPU {setup.lazy[0]}'s thread sleeps, so that CPU is in lazy-TLB mode"
    folios = folio_words(setup)
    text += f". migratepages runs on CPU {setup.initiator} and moves {folios}"
    text += "," if len(setup.folios) > 1 else ""
    text += " from node 0 to node 1 and back (2 moves)" if setup.moves == 2 else \
        " from node 0 to node 1 (1 move)"
    if setup.mode is Mode.SERIAL:
        text += ", serial (Linux 6.2: unmap, flush, copy, remap one folio at a time)."
    else:
        text += f", batched (Linux 6.3, batches of up to {setup.batch_pages} base pages)."
    return text + " No folio is busy and nothing fails."


def folio_words(setup: Setup) -> str:
    """``6 base pages (4 KiB), then a 2 MiB THP, then 3 base pages``."""
    parts = []
    for order, count in setup.folios:
        if order == THP_ORDER:
            parts.append("a 2 MiB THP" if count == 1 else f"{count} 2 MiB THPs")
        else:
            parts.append(f"{count} base page{'s' if count > 1 else ''}")
    if setup.folios[0][0] == 0:
        parts[0] += " (4 KiB)"
    return ", then ".join(parts)


def cpu_words(cpus: tuple[int, ...]) -> str:
    """``0-5`` for a run of three or more, else ``0, 2 and 5``."""
    if len(cpus) >= 3 and cpus == tuple(range(cpus[0], cpus[-1] + 1)):
        return f"{cpus[0]}-{cpus[-1]}"
    if len(cpus) == 1:
        return str(cpus[0])
    return ", ".join(map(str, cpus[:-1])) + f" and {cpus[-1]}"


def rounds_per_move(setup: Setup) -> int:
    """Shootdown rounds one move sends, by the kernel's rules."""
    if setup.mode is Mode.SERIAL:
        return setup.base_pages + setup.thps  # one per PTE, one per THP's PMD
    deferred = sum(1 for batch in setup.batches() if any(order < THP_ORDER for order in batch))
    return deferred + setup.thps


def rounds_words(setup: Setup) -> str:
    """How the rounds add up, ending ``= <rounds>``."""
    per_move = rounds_per_move(setup)
    total = per_move * setup.moves
    times = f"{per_move} per move × {setup.moves} moves = {total}" if setup.moves > 1 else \
        f"{per_move} per move, 1 move = {total}"
    thp = f" and one for each THP's PMD, flushed at once ({setup.thps})" if setup.thps else ""
    if setup.mode is Mode.SERIAL:
        return (f"serial: a round for each PTE as it is unmapped, one per base page "
                f"({setup.base_pages}){thp}; {times}")
    batches = setup.batches()
    shapes = ", ".join(batch_words(batch) for batch in batches)
    deferred = sum(1 for batch in batches if any(order < THP_ORDER for order in batch))
    only_thp = "; a batch of a THP alone defers none" if deferred < len(batches) else ""
    return (f"batched: each move cuts {len(batches)} batch{'es' if len(batches) > 1 else ''} "
            f"({shapes}); one deferred full flush per batch with base pages "
            f"({deferred}{only_thp}){thp}; {times}")


def batch_words(batch: list[int]) -> str:
    """``[4 pages]``, ``[2 pages + THP]``, ``[THP]``."""
    base = batch.count(0)
    thps = batch.count(THP_ORDER)
    parts = [f"{base} page{'s' if base > 1 else ''}"] if base else []
    parts += ["THP"] * thps
    return "[" + " + ".join(parts) + "]"


def targets_words(setup: Setup) -> str:
    """Who a round interrupts, and who it skips."""
    targets = setup.targets
    text = (f"each round interrupts the {len(targets)} CPUs of mm_cpumask that run a thread "
            f"({cpu_words(targets)})")
    lazy = f"lazy CPU {setup.lazy[0]} and " if setup.lazy else ""
    return (f"{text}, skipping {lazy}CPU {setup.initiator} (migratepages runs there, outside "
            "the mask)")


def explain(kind: Kind, setup: Setup) -> tuple[Answer, str]:
    """The answer as the kernel's rules give it, and the explanation, which ends with it."""
    rounds = rounds_per_move(setup) * setup.moves
    if kind is Kind.ROUNDS:
        return rounds, rounds_words(setup)
    if kind is Kind.IPIS:
        ipis = rounds * len(setup.targets)
        return ipis, (f"{targets_words(setup)}; {rounds_words(setup)} rounds; "
                      f"{rounds} rounds × {len(setup.targets)} CPUs = {ipis}")
    if kind is Kind.WHICH_CPUS:
        row = tuple(rounds if cpu in setup.targets else 0 for cpu in range(CPUS))
        return row, (f"{targets_words(setup)}, and each of them takes every round; "
                     f"{rounds_words(setup)} rounds; so CPUs {cpu_words(setup.targets)} count "
                     f"{rounds} each and the others 0 = {answer_text(row)}")
    pages = setup.base_pages + setup.thps * THP_PAGES
    thp = (f" + the THP's {THP_PAGES} (it crosses the {setup.batch_pages}-page limit, so the "
           f"batch includes it; its PMD was flushed at once, but it stays unmapped until the "
           f"move)") if setup.thps else ""
    sum_text = f": {setup.base_pages} + {THP_PAGES} = {pages}" if setup.thps else f" = {pages}"
    return pages, (f"batched: the unmap loop covers the whole batch before its one flush: "
                   f"{setup.base_pages} base pages{thp}; one move and nothing fails, so "
                   f"`migviz run` counts exactly these pages as pgmigrate_success{sum_text}")
