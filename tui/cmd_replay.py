"""``migviz replay FILE``: a real kernel trace in the app, its counters, or beside the model."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from core.kernel_trace import load_recording
from tui.output import emit


def replay_command(args: argparse.Namespace) -> int:
    recording = load_recording(Path(args.file))
    if args.against_model:
        from core.against import against_model
        from tui.report import format_against

        result = against_model(recording)
        emit(json.dumps(result, indent=2) if args.json else format_against(result))
        return 0
    if args.json:
        emit(json.dumps(recording.counts(), indent=2))
        return 0
    from tui.replay_app import run_replay

    return run_replay(recording, paused=args.paused, speed=args.speed, theme=args.theme,
                      keymap_file=args.keymap, mouse=not args.no_mouse)
