"""Writing the command line's output like a Unix tool: a full disk or a closed standard error
is one `migviz: error:` line, a reader that went away is a quiet end, and a file given with -o
never loses what was in it."""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

STDOUT = "standard output"


class OutputError(Exception):
    """Output that could not be written; the message names what and why."""

    def __init__(self, message: str, *, stdout: bool = False) -> None:
        super().__init__(message)
        self.stdout = stdout  # the failure was on standard output


class OutputPathError(Exception):
    """A -o path that cannot be used (it exists, is a directory, ...): bad input."""


@contextmanager
def writing(what: str) -> Iterator[None]:
    """Turn a failed write to ``what`` into an OutputError naming it. A closed pipe stays a
    BrokenPipeError: the caller ends quietly, as `head` expects."""
    try:
        yield
    except BrokenPipeError:
        raise
    except OSError as err:
        raise OutputError(f"cannot write {what}: {err.strerror or err}",
                          stdout=what == STDOUT) from None


def emit(text: str, end: str = "\n") -> None:
    """Write to standard output."""
    with writing(STDOUT):
        sys.stdout.write(text + end)


def flush_stdout() -> None:
    """Flush standard output now, so that an error is ours to report: at interpreter exit it
    would become an "Exception ignored" message and exit code 120."""
    with writing(STDOUT):
        sys.stdout.flush()


def say(line: str) -> None:
    """Write one line to standard error; if even that fails there is nobody left to tell."""
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    except (OSError, ValueError):
        drop(sys.stderr)


def drop(stream: TextIO) -> None:
    """Point a standard stream at /dev/null, so that what is still buffered in it goes nowhere
    instead of failing again when Python flushes it at exit."""
    try:
        fd = stream.fileno()
    except (OSError, ValueError):  # not a real file (a test's capture): nothing is flushed at exit
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


@contextmanager
def output_file(output: str, force: bool) -> Iterator[TextIO]:
    """A file to write into. Nothing the user wrote is lost: an existing file is replaced only
    with ``force``, and only once the new text is complete (it is written beside it, then
    renamed over it); a file this run created is removed if the run fails or is interrupted."""
    if not output:
        raise OutputPathError("-o: empty file name")
    path = Path(output)
    if path.is_dir():
        raise OutputPathError(f"{output}: is a directory")
    exists = path.exists() or path.is_symlink()
    if exists and not force:
        raise OutputPathError(f"{output}: already exists; not overwriting it (use --force)")
    if not path.parent.exists():
        raise OutputPathError(f"{output}: folder {path.parent} does not exist")
    with writing(output):
        target = path.resolve()
        if exists and target.is_file():
            temp = target.with_name(f".{target.name}.migviz-{os.getpid()}")
            stream = temp.open("x", encoding="utf-8")
            with _removed_on_failure(temp):
                with stream:
                    yield stream
                os.chmod(temp, stat.S_IMODE(target.stat().st_mode))
                os.replace(temp, target)
        elif exists:  # a device or a pipe (/dev/stdout, a FIFO): write through it
            with path.open("w", encoding="utf-8") as stream:
                yield stream
        else:
            stream = path.open("x", encoding="utf-8")  # only what this run created is removed
            with _removed_on_failure(path), stream:
                yield stream


@contextmanager
def _removed_on_failure(path: Path) -> Iterator[None]:
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise
