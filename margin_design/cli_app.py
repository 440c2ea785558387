"""``margin-design app``: the explorer, a local web page to design a capped rule by moving sliders (a thin adapter over
:mod:`margin_design.app`).

    margin-design app [CONFIG] [--port 8765] [--host 127.0.0.1] [--no-browser]

Starts a local server and opens the page in the browser; without CONFIG the page starts from the bundled benchmark
(examples/benchmark.toml). The server listens on 127.0.0.1 unless ``--host`` names another address (then it warns:
the page has no login). Ctrl-C stops it. Needs the optional extra: ``pip install 'margin-design[app]'``. User errors
(a config that cannot be read, a port in use) print one sentence and exit with status 2.
"""

from __future__ import annotations

import argparse
import ipaddress
import sys

from margin_design.errors import InputError

__all__ = ["register", "run"]

LOOPBACK = "127.0.0.1"


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="TOML design config (objective.kind = 'cost') to start from; default: the bundled benchmark")
    p.add_argument("--port", type=int, default=8765, help="TCP port (default: %(default)s; 0: any free port)")
    p.add_argument("--host", default=LOOPBACK, help="address to listen on (default: %(default)s, this machine only; another address "
                   "lets anyone who can reach it use the page, which has no login)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page in a browser; print its address only")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    from margin_design import console

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} must be between 0 and 65535.")
    try:
        import starlette  # noqa: F401
        import tomli_w  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InputError(f"margin-design app needs the optional extra ({exc.name} is missing): pip install 'margin-design[app]'.") from None
    from margin_design.app.server import Server
    from margin_design.app.session import Explorer

    explorer = Explorer(args.config)   # a config the page cannot show is refused here, before the port is taken
    try:
        server = Server(explorer, args.host, args.port)
    except BaseException:
        explorer.close()
        raise
    if not _is_loopback(args.host):
        print(f"margin-design: warning: serving on {args.host}: anyone who can reach this machine on port {server.port} can use the "
              "page (it has no login); the default --host 127.0.0.1 keeps it on this machine.", file=sys.stderr)
    console.say(f"margin-design app: serving {server.url} (Ctrl-C stops it)")
    sys.stdout.flush()
    if not args.no_browser:
        import webbrowser

        webbrowser.open(server.url)
    server.run()
    return 0


def register(subparsers) -> None:
    """Add the ``app`` subcommand to the top-level parser."""
    p = subparsers.add_parser("app", help="explore designs in a local web page: sliders, plots, certificate, export")
    _add_arguments(p)
    p.set_defaults(func=run)
