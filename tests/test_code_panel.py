"""The code panel: the pseudo-code's lines follow the engine (each shootdown round lights the line
of the code path that sent it, as the engine counts them), and the panel in the app lights the
line of the latest event, stepping back included."""

from __future__ import annotations

import asyncio

import pytest
from helpers import build_scenario, headless_run

from core.events import EventKind, RoundKind
from core.pseudocode import BATCHED, SERIAL, line_of, listing
from core.scenario import Mode, Scenario, load_scenario
from tui.app import MigvizApp
from tui.widgets.code_panel import CodePanel


def _troubled(mode: str) -> Scenario:
    """Base pages and THPs, with every kind of trouble: retries, sleeps, the sync fallback."""
    return build_scenario(name="troubled", orders=[0] * 20 + [9] + [0] * 20, threads=4,
                          contention=0.3, move_contention=0.2, writeback=0.1, mode=mode, seed=7)


@pytest.mark.parametrize("mode", ["serial", "batched"])
def test_every_event_is_on_a_line_of_its_own_shape(mode: str) -> None:
    engine, events = headless_run(_troubled(mode))
    ids = {code.id for code in listing(mode == "serial")}
    kinds = {event.kind for event in events}
    assert EventKind.RESTORE in kinds or EventKind.MOVE_FAIL in kinds  # the trouble happened
    for event in events:
        assert event.serial == (mode == "serial")
        assert line_of(event) in ids, event


def test_rounds_light_the_line_of_the_code_path_that_sent_them() -> None:
    """Batched: one 'flush once' per batch round, the PMD line per THP round, the fallback line
    per round of the one-by-one fallback — as many as the engine counts of each."""
    engine, events = headless_run(_troubled("batched"))
    summary = engine.summary()
    sends = [line_of(event) for event in events if event.kind is EventKind.FLUSH_SEND]
    assert summary.fallback_flush_rounds > 0 and summary.pmd_flush_rounds > 0
    assert sends.count("flush") == summary.batch_flush_rounds
    assert sends.count("pmd") == summary.pmd_flush_rounds
    assert sends.count("fb-unmap") == summary.fallback_flush_rounds
    assert len(sends) == summary.nr_tlb_remote_flush


def test_serial_rounds_are_the_flush_at_once_line() -> None:
    engine, events = headless_run(_troubled("serial"))
    sends = [line_of(event) for event in events if event.kind is EventKind.FLUSH_SEND]
    assert sends and set(sends) == {"flush"}
    assert len(sends) == engine.summary().nr_tlb_remote_flush


def test_listings_name_a_kernel_function_per_line_and_keep_ids_unique() -> None:
    for shape in (SERIAL, BATCHED):
        assert len({code.id for code in shape}) == len(shape)
        assert all(code.function for code in shape)


def _lit_text(panel: CodePanel) -> str:
    return panel.lines[panel.lit].plain[2:].strip()


def test_the_panel_lights_the_latest_events_line_and_steps_back() -> None:
    app = MigvizApp(load_scenario("default"), Mode.SERIAL, paused=True)

    async def main() -> None:
        async with app.run_test(size=(140, 44)) as pilot:
            await pilot.pause()
            panel = app.query_one(CodePanel)
            assert not panel.display
            await pilot.press("c")
            assert panel.display and app.code_shown
            assert panel.border_title is not None and "6.2" in str(panel.border_title)
            seen: list[tuple[str, str]] = []
            for _ in range(12):
                await pilot.press("n")
                event = app.lane.engine.view().last_event
                assert event is not None
                code = next(c for c in SERIAL if c.id == line_of(event))
                assert _lit_text(panel) == code.text
                assert str(panel.border_subtitle).startswith(code.function)
                seen.append((_lit_text(panel), str(panel.border_subtitle)))
                if event.kind is EventKind.FLUSH_SEND:
                    assert "flush NOW" in _lit_text(panel)
            assert any("flush NOW" in text for text, _ in seen)
            for before in reversed(seen[:-1]):
                await pilot.press("u")
                assert (_lit_text(panel), str(panel.border_subtitle)) == before
            await pilot.press("c")
            assert not panel.display

    asyncio.run(main())


def test_the_batched_listing_shows_its_one_flush() -> None:
    app = MigvizApp(load_scenario("default"), Mode.BATCHED, paused=True)

    async def main() -> None:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await pilot.press("c")
            panel = app.query_one(CodePanel)
            assert "6.3" in str(panel.border_title)
            for _ in range(400):
                event = app.lane.engine.view().last_event
                if event is not None and event.kind is EventKind.FLUSH_SEND \
                        and event.round_kind is RoundKind.BATCH:
                    break
                await pilot.press("n")
            assert "ONE flush" in _lit_text(panel)
            assert str(panel.border_subtitle).startswith("try_to_unmap_flush()")
            width = panel.scrollable_content_region.width
            assert all(line.cell_length <= width for line in panel.lines)

    asyncio.run(main())
