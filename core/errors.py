"""Errors that reach the user as one line: ``migviz: error: ...`` and exit code 2."""

from __future__ import annotations


class InputError(Exception):
    """Bad input, or a host that cannot do what was asked (no perf, no permission, a file that
    is not a trace). The message is one line naming what is wrong; the CLI prints it, exits 2."""
