"""``migviz serve``: the app in a web browser, through textual-serve (the Textual project's server).

Each browser session that opens the page gets its own app process on this machine, started as
``python -m tui.cli tui SCENARIO ...`` with serve's options passed through. Everything is
checked before the server starts, as ``migviz tui`` checks it, so that a typo is one line here
and not a broken page. The server listens on loopback unless told otherwise; bound elsewhere it
says on standard error who can then drive the app. Pages of other web sites get no session.

``serve(app_args, host, port)`` serves any migviz app command (``migviz <app_args>``): the hook
for serving commands other than ``tui``.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import logging
import shlex
import socket
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from core.errors import InputError
from core.scenario import load_scenario
from tui.output import emit, say

if TYPE_CHECKING:
    from aiohttp import web
    from textual_serve.server import Server

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
EXIT_FAILURE = 1
LISTEN_ERRORS = (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES)

log = logging.getLogger("migviz.serve")


class ListenError(Exception):
    """The server cannot listen where asked: a port in use, a host that is not this machine."""


def serve_command(args: argparse.Namespace) -> int:
    """Run `migviz serve` with the parsed ``args``; returns the exit code."""
    if args.tour is not None:
        app_args = tour_words(args)
        from tui.tour import load_tour

        load_tour(args.tour or None)  # a bad tour is one line before anything is served
        check_app(["tui", *app_args[1 + bool(args.tour):]])  # its theme and keymap
    else:
        app_args = tui_words(args)
        check_app(app_args)
    return serve(app_args, args.host, args.port)


def tour_words(args: argparse.Namespace) -> list[str]:
    """The `migviz tour [FILE] ...` command line that serve --tour stands for."""
    words = ["tour", *([args.tour] if args.tour else [])]
    if args.big:
        words.append("--big")
    if args.theme is not None:
        words.append(f"--theme={args.theme}")
    if args.keymap is not None:
        words.append(f"--keymap={args.keymap}")
    return words


def tui_words(args: argparse.Namespace) -> list[str]:
    """The `migviz tui ...` command line (after ``migviz``) that serve's options stand for.
    Options are written --option=VALUE, so that a value starting with '-' stays a value."""
    words = ["tui", args.scenario]
    for override in args.overrides:  # --costs FILE arrives here as costs.KEY=VALUE overrides
        words.append(f"--set={override}")
    if args.mode:
        words.append(f"--mode={args.mode}")
    if args.paused:
        words.append("--paused")
    if args.speed != 1.0:
        words.append(f"--speed={args.speed!r}")
    if args.theme is not None:
        words.append(f"--theme={args.theme}")
    if args.keymap is not None:
        words.append(f"--keymap={args.keymap}")
    if args.breaks:
        words += ["--break", *(kind.value for kind in args.breaks)]
    if args.versus is not None:
        words.append(f"--versus={args.versus}")
    for override in args.versus_sets:
        words.append(f"--versus-set={override}")
    if args.split:
        words.append("--split")
    if args.big:
        words.append("--big")
    return words


def check_app(app_args: Sequence[str]) -> None:
    """Check a `migviz tui` command line as `migviz tui` would before opening the app: the
    scenario(s), the theme and the keymap. Raises InputError or ScenarioError."""
    from tui import cli

    # Raised as InputError: under `python -m tui.cli` the main() running is __main__'s copy
    # of tui.cli, whose UsageError is not the class this imported copy raises.
    try:
        args = cli._parser().parse_args(list(app_args))
        load_scenario(args.scenario, args.overrides)
        if args.theme is not None:
            cli._check_theme(args.theme)
        cli._keymap(args.keymap)
        if args.versus or args.versus_sets:
            load_scenario(args.versus or args.scenario, [*args.overrides, *args.versus_sets])
    except cli.UsageError as err:
        raise InputError(str(err)) from None


def app_command(app_args: Sequence[str]) -> str:
    """The shell command each browser session runs: `migviz <app_args>` through this very
    Python, so that it works from a virtual environment whose bin/ is not on PATH."""
    return shlex.join([sys.executable, "-m", "tui.cli", *app_args])


def serve(app_args: Sequence[str], host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> int:
    """Serve `migviz <app_args>` on http://host:port until ctrl+c; returns the exit code. A
    host or port that cannot be used is one `migviz: error:` line and exit code 1."""
    host = host.strip("[]")  # --host [::1] as in a URL
    try:
        addresses = resolve(host, port)
        check_can_listen(host, port)
    except ListenError as err:
        say(f"migviz: error: {err}")
        return EXIT_FAILURE
    loopback = all(address.is_loopback for address in addresses)
    if not loopback:
        say(exposure_warning(host, port, addresses))
    shown = shlex.join(["migviz", *app_args])
    server = make_server(app_command(app_args), host, port, shown, loopback)
    try:
        server.serve()
    except OSError as err:
        if err.errno not in LISTEN_ERRORS:
            raise
        # Lost the port between the check and the start.
        say(f"migviz: error: cannot listen on {host}:{port}: {err.strerror or err}")
        return EXIT_FAILURE
    return 0


def resolve(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses ``host`` binds to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as err:
        raise ListenError(f"--host {host}: not an address of this machine ({err.strerror})") \
            from None
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def exposure_warning(host: str, port: int,
                     addresses: Sequence[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> str:
    """The one line said when the server is reachable from other machines."""
    where = ("every network interface" if any(address.is_unspecified for address in addresses)
             else "an address other machines can reach")
    return (f"migviz: warning: serving on {host} ({where}), not loopback: anyone who can reach "
            f"port {port} can drive the app, and every page they open starts a process on this "
            "machine; serve on 127.0.0.1 unless that is what you want")


def check_can_listen(host: str, port: int) -> None:
    """Bind every address of ``host`` once, as the server will, to name a port in use before
    the server starts (it would print its banner first, then a traceback)."""
    for family, kind, proto, _, address in socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE):
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio does
            try:
                probe.bind(address)
            except OSError as err:
                reason = err.strerror or str(err)
                if err.errno == errno.EADDRINUSE:
                    reason += " (another server? choose another port with --port)"
                raise ListenError(f"cannot listen on {host}:{port}: {reason}") from None


def is_loopback_host(name: str) -> bool:
    """True for a loopback address or the name localhost: what a page served on loopback
    may be opened as."""
    name = name.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_for(host: str, port: int) -> str:
    """The address to open in a browser for a server bound to ``host``."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()  # the page works by any name of this machine
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def make_server(command: str, host: str, port: int, shown: str, loopback: bool) -> Server:
    """A textual-serve server running ``command`` per browser session (``shown`` is how the
    command is named to people; ``loopback``: the server is bound to loopback only)."""
    from aiohttp import web
    from textual_serve.server import Server

    url = url_for(host, port)

    class MigvizServer(Server):
        """textual-serve's server, with migviz's start-up lines, pages that connect back to
        the address they were loaded from, and the app refused to other web sites' pages."""

        async def on_startup(self, app: web.Application) -> None:
            emit(f"migviz: serving `{shown}` on {url} (open it in a browser; ctrl+c stops)")
            sys.stdout.flush()

        async def handle_index(self, request: web.Request) -> web.StreamResponse:
            # textual-serve writes its one fixed public URL into the page, for the page's
            # websocket; this page's own address works wherever the page itself was reached
            # (a server on 0.0.0.0 opened by its IP address, or localhost for 127.0.0.1).
            # No await comes between this assignment and the page's rendering.
            self.public_url = f"{request.scheme}://{request.host}"
            response: web.StreamResponse = await super().handle_index(request)
            return response

        async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
            refusal = websocket_refusal(request.host, request.headers.get("Origin"), loopback)
            if refusal is not None:
                log.warning("refused a session: %s", refusal)
                raise web.HTTPForbidden(text=refusal)
            return await super().handle_websocket(request)

    return MigvizServer(command, host=host, port=port, title=shown, public_url=url)


def websocket_refusal(host_header: str, origin: str | None, loopback: bool) -> str | None:
    """Why a browser's session must not start, or None. A page of another web site may open a
    websocket to this server (browsers allow it): its Origin then names another host. On a
    loopback server, a Host that is not a loopback name is a DNS-rebinding page."""
    if origin is not None and urlsplit(origin).netloc.lower() != host_header.lower():
        return f"a page from {origin} is not this server's page ({host_header})"
    if loopback and not is_loopback_host(urlsplit(f"//{host_header}").hostname or ""):
        return f"this server is on loopback; {host_header} is not a loopback address"
    return None
