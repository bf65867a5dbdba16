"""`migviz serve`: the command line each browser session runs, the checks made before the server
starts, the warning off loopback, the refusal of other sites' pages; and the app itself in a real
headless Chromium (Debian's `chromium`, driven through Playwright), stepped with a key press."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from helpers import assert_one_line, call

from core.engine import Engine
from core.scenario import load_scenario, scenario_source
from core.trace import TraceFormatter, write_trace
from tui.cli import _parser
from tui.cmd_serve import websocket_refusal

pytest.importorskip("textual_serve", reason="textual-serve is not installed (pip install -e .)")

ROOT = Path(__file__).resolve().parents[1]
SERVE_ONLY = {"command", "host", "port", "tour"}


def free_port() -> int:
    """A loopback port nobody listens on (the OS's choice, released for the server)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Served:
    """What the server would have served, recorded instead of serving."""

    command: str = ""
    host: str = ""
    port: int = 0
    starts: int = 0


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Served:
    """textual-serve's Server.serve, replaced: records the server and returns at once."""
    from textual_serve.server import Server

    record = Served()

    def fake_serve(self: Server, debug: bool = False) -> None:
        record.command, record.host, record.port = self.command, self.host, self.port
        record.starts += 1

    monkeypatch.setattr(Server, "serve", fake_serve)
    return record


def tui_namespace(command: str) -> argparse.Namespace:
    """The shell command a session runs, split as the shell splits it, parsed as migviz does."""
    argv = shlex.split(command)
    assert argv[:3] == [sys.executable, "-m", "tui.cli"], argv
    assert argv[3] == "tui", argv
    return _parser().parse_args(argv[3:])


# ---------------------------------------------------------------------------------------------
# The command line served


def test_every_option_reaches_the_app(tmp_path: Path, served: Served,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    # A scenario path that needs quoting in a shell: a space and a quote.
    scenario = tmp_path / "it's mine.toml"
    scenario.write_text(scenario_source("tiny")[1])
    costs = tmp_path / "host.toml"
    costs.write_text("[costs]\nipi_latency_ns = 1500\n")
    keymap = tmp_path / "keys.toml"
    keymap.write_text("[keymap]\n")  # valid and empty: only its path matters here
    options = ["--set", "migration.batch_pages=4", "--costs", str(costs), "--mode", "serial",
               "--paused", "--speed", "2", "--theme", "migviz-light", "--keymap", str(keymap),
               "--break", "flush", "retry", "--versus", "default",
               "--versus-set", "topology.arch=arm64-tlbi", "--split", "--big"]
    port = free_port()
    code, out, err = call(capsys, "serve", str(scenario), *options, "--port", str(port))
    assert (code, err) == (0, "")
    assert served.starts == 1 and (served.host, served.port) == ("127.0.0.1", port)

    given = _parser().parse_args(["serve", str(scenario), *options])
    app = tui_namespace(served.command)
    defaults = _parser().parse_args(["serve"])
    shared = set(vars(given)) - SERVE_ONLY
    assert shared <= set(vars(app)), "serve takes an option that migviz tui does not"
    for name in shared:
        assert getattr(app, name) == getattr(given, name), name
        # --costs leaves no value of its own: it becomes costs.KEY=VALUE overrides (checked above)
        if name != "costs":
            assert getattr(given, name) != getattr(defaults, name), f"option {name} not exercised"
    assert "costs.ipi_latency_ns=1500" in app.overrides


def test_serve_tour_serves_a_guided_tour(tmp_path: Path, served: Served,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "serve", "--tour", "--big", "--theme", "migviz-light",
                        "--port", str(free_port()))
    assert (code, err) == (0, "")
    words = shlex.split(served.command)
    assert words[words.index("tui.cli") + 1:] == ["tour", "--big", "--theme=migviz-light"]
    mine = tmp_path / "my tour.toml"
    mine.write_text('title = "t"\n[[step]]\ntitle = "a"\nscenario = "tiny"\nnarration = "b"\n')
    code, _, err = call(capsys, "serve", "--tour", str(mine), "--port", str(free_port()))
    assert (code, err) == (0, "")
    words = shlex.split(served.command)
    assert words[words.index("tui.cli") + 1:] == ["tour", str(mine)]
    mine.write_text('title = "t"\n[[step]]\ntitle = "a"\nscenario = "tinny"\nnarration = "b"\n')
    starts = served.starts
    code, _, err = call(capsys, "serve", "--tour", str(mine), "--port", str(free_port()))
    assert code == 2 and served.starts == starts
    assert_one_line(err, "step 1 ('a')", "unknown scenario 'tinny'")


def test_defaults_serve_the_default_scenario_on_loopback(served: Served,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    # Port 8000 may be taken on the machine that runs the tests: only the host is left default.
    port = free_port()
    code, _, err = call(capsys, "serve", "--port", str(port))
    assert (code, err) == (0, "")
    assert served.host == "127.0.0.1"
    app = tui_namespace(served.command)
    assert (app.scenario, app.overrides, app.paused, app.mode) == ("default", [], False, None)
    assert _parser().parse_args(["serve"]).port == 8000


# ---------------------------------------------------------------------------------------------
# Checked before the server starts: one line, nothing served


@pytest.mark.parametrize(("argv", "expected"), [
    (["serve", "nosuch"], "unknown scenario 'nosuch'"),
    (["serve", "tiny", "--set", "migration.batch_pages=0"], "batch_pages"),
    (["serve", "numa-balancing", "--set", "numa.scan_pages=0"], "numa.scan_pages"),
    (["serve", "tiny", "--theme", "nope"], "--theme nope"),
    (["serve", "tiny", "--versus", "nosuch"], "unknown scenario 'nosuch'"),
    (["serve", "tiny", "--port", "0"], "--port"),
    (["serve", "tiny", "--port", "65536"], "--port"),
    (["serve", "tiny", "--no-mouse"], "--no-mouse"),
], ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_bad_input_is_one_line_and_serves_nothing(argv: list[str], expected: str, served: Served,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = call(capsys, *argv)
    assert code == 2 and out == ""
    assert_one_line(err, expected)
    assert served.starts == 0


def test_a_missing_keymap_is_one_line(tmp_path: Path, served: Served,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "serve", "tiny", "--keymap", str(tmp_path / "none.toml"))
    assert code == 2
    assert_one_line(err, "none.toml")
    assert served.starts == 0


def test_bad_input_under_python_m_is_one_line() -> None:
    # Run as `python -m tui.cli` (as the browser test and every session do), tui.cli is
    # loaded twice (__main__ and tui.cli): the check's errors must still be one line.
    done = subprocess.run([sys.executable, "-m", "tui.cli", "serve", "tiny", "--theme", "nope"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 2 and done.stdout == ""
    assert_one_line(done.stderr, "--theme nope")


def test_a_port_in_use_is_one_line(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = call(capsys, "serve", "tiny", "--port", str(port))
    assert code == 1 and out == ""
    assert_one_line(err, f"cannot listen on 127.0.0.1:{port}", "--port")
    assert served.starts == 0


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])  # 192.0.2.0/24: TEST-NET
def test_a_host_not_of_this_machine_is_one_line(host: str, served: Served,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "serve", "tiny", "--host", host)
    assert code == 1
    assert_one_line(err, host)  # and no warning: nothing is served
    assert served.starts == 0


# ---------------------------------------------------------------------------------------------
# Off loopback: a warning; other sites' pages: refused


def test_serving_off_loopback_warns(served: Served, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    code, _, err = call(capsys, "serve", "tiny", "--host", "0.0.0.0", "--port", str(port))
    assert code == 0 and served.starts == 1 and served.host == "0.0.0.0"
    assert err.startswith("migviz: warning: serving on 0.0.0.0") and err.count("\n") == 1, err
    assert "every network interface" in err and f"port {port}" in err
    assert "anyone who can reach" in err and "process on this machine" in err


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_serving_on_loopback_says_nothing(host: str, served: Served,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = call(capsys, "serve", "tiny", "--host", host, "--port", str(free_port()))
    assert (code, err) == (0, "") and served.starts == 1


@pytest.mark.parametrize(("host", "origin", "loopback", "refused"), [
    ("127.0.0.1:8000", "http://127.0.0.1:8000", True, False),
    ("localhost:8000", "http://localhost:8000", True, False),
    ("[::1]:8000", "http://[::1]:8000", True, False),
    ("127.0.0.1:8000", None, True, False),  # not a browser: it could connect anyway
    ("127.0.0.1:8000", "http://evil.example", True, True),  # another site's page
    ("127.0.0.1:8000", "http://127.0.0.1:9000", True, True),  # another local server's page
    ("evil.example:8000", "http://evil.example:8000", True, True),  # DNS rebinding
    ("lecture-hall:8000", "http://lecture-hall:8000", False, False),  # a server on 0.0.0.0
    ("lecture-hall:8000", "http://evil.example", False, True),
])
def test_websocket_refusal(host: str, origin: str | None, loopback: bool, refused: bool) -> None:
    assert (websocket_refusal(host, origin, loopback) is not None) == refused


# ---------------------------------------------------------------------------------------------
# The app in a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]

# textual-serve's page draws the terminal with xterm.js on a canvas: no text in the DOM, and
# the Terminal object is kept in a local of textual.js. Its constructor does
# `this.terminal = new Terminal(...)` on an object that already holds `websocket_url`; a setter
# on Object.prototype sees that assignment, stores the value as an ordinary property and keeps
# the terminal for the test, which then reads the screen from xterm's own buffer.
KEEP_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal",
                          {value, writable: true, configurable: true, enumerable: true});
    if ("websocket_url" in this) window.migvizTerminal = value;
  },
});
"""
SCREEN_ROWS = """() => {
  const terminal = window.migvizTerminal;
  if (!terminal) return null;
  const buffer = terminal.buffer.active, rows = [];
  for (let y = 0; y < terminal.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows;
}"""


def chromium_path() -> str | None:
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def squeezed(text: str) -> str:
    return " ".join(text.split())


@dataclass
class Server:
    """A `migviz serve` process and where it listens."""

    process: subprocess.Popen[bytes]
    port: int
    output: Path


def wait_until_serving(server: Server, limit_s: float = 30.0) -> None:
    deadline = time.monotonic() + limit_s
    while True:
        if server.process.poll() is not None:
            pytest.fail(f"migviz serve exited with {server.process.returncode}: "
                        f"{server.output.read_text()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=2) as page:
                if page.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"migviz serve did not answer: {server.output.read_text()}")
        time.sleep(0.2)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """`migviz serve tiny --paused` on a free loopback port."""
    yield from serving(tmp_path, ["tiny", "--paused"])


@pytest.fixture
def tour_server(tmp_path: Path) -> Iterator[Server]:
    """`migviz serve --tour --big`: the built-in tour, projector layout."""
    yield from serving(tmp_path, ["--tour", "--big"])


def serving(tmp_path: Path, args: list[str]) -> Iterator[Server]:
    """`migviz serve ARGS` on a free loopback port, in a process group of its own, killed
    whole at the end (the server and every app it started)."""
    port = free_port()
    output = tmp_path / "serve.log"
    with output.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tui.cli", "serve", *args, "--port", str(port)],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True)
    served = Server(process, port, output)
    try:
        wait_until_serving(served)
        yield served
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # as ctrl+c in its terminal
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with contextlib.suppress(ProcessLookupError):  # an app that outlived the server
            os.killpg(process.pid, signal.SIGKILL)


def wait_for_screen(page: Any, limit_s: float, *wanted: str) -> str:
    """The terminal's text (each row's runs of blanks squeezed) once it shows all of
    ``wanted``."""
    deadline = time.monotonic() + limit_s
    while True:
        rows = page.evaluate(SCREEN_ROWS) or []
        text = "\n".join(squeezed(row) for row in rows)
        if all(part in text for part in wanted):
            return text
        if time.monotonic() > deadline:
            pytest.fail(f"the page never showed {wanted!r}; it shows:\n{text}")
        time.sleep(0.1)


@pytest.fixture
def chromium() -> tuple[str, Any]:
    """Debian's Chromium and Playwright's sync API, or a skip saying which is missing."""
    executable = chromium_path()
    if executable is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium); .ci/run installs it")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="playwright is not installed (pip install -e '.[test]')")
    return executable, sync_api


def local_only(route: Any) -> None:
    """The page asks fonts.googleapis.com for a font: nothing leaves this machine."""
    if urlsplit(route.request.url).hostname == "127.0.0.1":
        route.continue_()
    else:
        route.abort()


def test_the_builtin_tour_runs_in_chromium(chromium: tuple[str, Any],
                                           tour_server: Server) -> None:
    executable, sync_api = chromium
    from tui.tour import load_tour

    tour = load_tour(None)
    count = len(tour.steps)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            # A projector's page: 100 columns or so.
            page = browser.new_page(viewport={"width": 1000, "height": 640})
            page.route("**/*", local_only)
            page.add_init_script(KEEP_TERMINAL)
            page.goto(f"http://127.0.0.1:{tour_server.port}/")
            page.wait_for_function("() => window.migvizTerminal !== undefined", timeout=10_000)
            wait_for_screen(page, 20, f"tour 1/{count}", squeezed(tour.steps[0].title))
            page.locator(".xterm-helper-textarea").focus()
            page.keyboard.press("ArrowRight")
            wait_for_screen(page, 20, f"tour 2/{count}", squeezed(tour.steps[1].title))
            page.keyboard.press("ArrowLeft")
            wait_for_screen(page, 20, f"tour 1/{count}")
        finally:
            browser.close()


def test_the_app_runs_and_steps_in_chromium(chromium: tuple[str, Any], server: Server) -> None:
    executable, sync_api = chromium
    scenario = load_scenario("tiny")
    engine = Engine(scenario, checkpoints=False)
    first = [squeezed(line) for line in write_trace(engine.step(),
                                                    TraceFormatter(scenario, printk=True))]
    assert first, "the first step makes a trace line"

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.route("**/*", local_only)
            page.add_init_script(KEEP_TERMINAL)
            response = page.goto(f"http://127.0.0.1:{server.port}/")
            assert response is not None and response.status == 200
            page.wait_for_function("() => window.migvizTerminal !== undefined", timeout=10_000)

            # The app's first screen: the header names the scenario and says PAUSED, and the
            # event log is drawn.
            before = wait_for_screen(page, 20, f"migviz · {scenario.name}", "PAUSED",
                                     "recent events")
            assert not any(line in before for line in first)

            # Paused, n steps one event: its trace line appears in the log.
            page.locator(".xterm-helper-textarea").focus()
            page.keyboard.press("n")
            after = wait_for_screen(page, 10, *first)
            assert "PAUSED" in after
        finally:
            browser.close()
    assert f"http://127.0.0.1:{server.port}" in server.output.read_text()


def test_another_sites_page_gets_no_session(server: Server) -> None:
    aiohttp = pytest.importorskip("aiohttp")
    import asyncio

    async def handshake(origin: str) -> int:
        async with aiohttp.ClientSession() as session:
            try:
                socket_ = await session.ws_connect(f"http://127.0.0.1:{server.port}/ws",
                                                   headers={"Origin": origin})
            except aiohttp.WSServerHandshakeError as refused:
                return int(refused.status)
            await socket_.close()
            return 101

    assert asyncio.run(handshake("http://evil.example")) == 403
    assert asyncio.run(handshake(f"http://127.0.0.1:{server.port}")) == 101
