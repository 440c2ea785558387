"""The explorer's web server: Starlette routes over :class:`~margin_design.app.session.Explorer`, served by uvicorn.

Routes: ``/`` the page, ``/static/*`` its script and style, ``/vendor/plotly.min.js`` the plotly.js bundle that ships
inside the ``plotly`` package (no CDN: the page makes no request off this server), and the JSON API ``/api/start``,
``/api/solve``, ``/api/rule``, ``/api/calibrate``, ``/api/export``.

Safety: bound to 127.0.0.1 unless asked otherwise; requests whose Host header is not this server's are refused (a web
page elsewhere cannot drive the explorer through DNS rebinding); request bodies are size-limited; a user error answers
with the library's one sentence (HTTP 400), any other failure with one sentence and no traceback (HTTP 500; the
traceback goes to the terminal running the server, for the analyst, never to the page).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import traceback
from pathlib import Path

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from margin_design.app.session import MAX_UPLOAD_BYTES, Explorer, calibrate, calibration_presets
from margin_design.errors import InputError, MarginDesignError

STATIC = Path(__file__).with_name("static")
#: Largest request body accepted (bytes): an uploaded rule file (JSON-escaped) plus the controls.
MAX_BODY_BYTES = 3 * MAX_UPLOAD_BYTES
#: The page's content-security policy: nothing is loaded from anywhere but this server.
CSP = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'"


def plotly_js() -> Path:
    """The plotly.js bundle of the installed ``plotly`` package."""
    import plotly

    return Path(plotly.__file__).with_name("package_data") / "plotly.min.js"


def _error(sentence: str, status: int) -> JSONResponse:
    return JSONResponse({"error": sentence}, status_code=status)


async def _body(request: Request) -> dict:
    size = request.headers.get("content-length")
    if size is not None and size.isdigit() and int(size) > MAX_BODY_BYTES:
        raise InputError(f"the request has {int(size):,} bytes; at most {MAX_BODY_BYTES:,} are accepted (a rule file of at most "
                         f"{MAX_UPLOAD_BYTES:,} bytes).")
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise InputError(f"the request has {len(raw):,} bytes; at most {MAX_BODY_BYTES:,} are accepted.")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InputError("the request is not JSON; reload the page.") from None
    if not isinstance(data, dict):
        raise InputError("the request is not a JSON object; reload the page.")
    return data


def _guarded(compute):
    """Run ``compute`` (sync, in the thread pool) and answer JSON: its result, or one sentence."""
    from starlette.concurrency import run_in_threadpool

    async def endpoint(request: Request):
        try:
            data = await _body(request) if request.method == "POST" else {}
            out = await run_in_threadpool(compute, request.app.state.explorer, data)
        except MarginDesignError as exc:
            return _error(str(exc), 400)
        except Exception as exc:  # noqa: BLE001 - the page gets one sentence; the terminal gets the traceback
            traceback.print_exc(file=sys.stderr)
            return _error(f"the server could not compute this ({type(exc).__name__}); the last good result is kept, and the "
                          "terminal running margin-design app has the details.", 500)
        if isinstance(out, Response):
            return out
        return JSONResponse(out)

    return endpoint


def _start(ex: Explorer, _data: dict) -> dict:
    from margin_design.design.config import CHOICES
    from margin_design.reports.figures import LINE, REGIME_COLORS

    return {
        "config": ex.start,
        "config_name": ex.config_name,
        "choices": {f"{s}.{k}": list(v) for (s, k), v in CHOICES.items()},
        "presets": calibration_presets(),
        "regime_colors": REGIME_COLORS,
        "line_colors": LINE,
        "max_upload_bytes": MAX_UPLOAD_BYTES,
    }


def _solve(ex: Explorer, data: dict) -> dict:
    return ex.page(data.get("config"), data.get("rule"))


def _rule(ex: Explorer, data: dict) -> dict:
    loaded = ex.add_rule(str(data.get("kind")), data.get("text"), str(data.get("name") or ""))
    return {"id": loaded.id, "label": loaded.label, "kind": loaded.kind}


def _calibrate(_ex: Explorer, data: dict) -> dict:
    return calibrate(data)


def _export(ex: Explorer, data: dict) -> Response:
    name, content = ex.export(str(data.get("what")), data.get("config"), data.get("rule"), data.get("tick"),
                              data.get("published_vols"))
    media = {"toml": "application/toml", "json": "application/json", "csv": "text/csv"}[name.rsplit(".", 1)[-1]]
    return Response(content, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})


async def _index(_request: Request):
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


async def _plotly(_request: Request):
    return FileResponse(plotly_js(), media_type="text/javascript", headers={"Cache-Control": "max-age=86400"})


def build_app(explorer: Explorer, hosts=("127.0.0.1", "localhost")) -> Starlette:
    """The Starlette application of one explorer; ``hosts``: Host header values accepted."""
    app = Starlette(
        routes=[
            Route("/", _index),
            Route("/vendor/plotly.min.js", _plotly),
            Route("/favicon.ico", lambda _request: Response(status_code=204)),
            Route("/api/start", _guarded(_start)),
            Route("/api/solve", _guarded(_solve), methods=["POST"]),
            Route("/api/rule", _guarded(_rule), methods=["POST"]),
            Route("/api/calibrate", _guarded(_calibrate), methods=["POST"]),
            Route("/api/export", _guarded(_export), methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts))],
    )
    app.state.explorer = explorer
    return app


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port, or one sentence (InputError) saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise InputError(f"--host {host!r} is not an address of this machine.") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise InputError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port.") from None
    sock.listen(128)
    return sock


class Server:
    """uvicorn serving one explorer on a bound socket; ``url`` once bound."""

    def __init__(self, explorer: Explorer, host: str = "127.0.0.1", port: int = 8765):
        import uvicorn

        self.sock = bind(host, port)
        self.port = self.sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}/"
        hosts = {"127.0.0.1", "localhost", "[::1]", host, shown}
        config = uvicorn.Config(build_app(explorer, hosts=sorted(hosts)), log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.explorer = explorer

    def run(self) -> None:
        """Serve until Ctrl-C (uvicorn shuts down cleanly, then the interruption propagates as KeyboardInterrupt)."""
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.explorer.close()

    def start_thread(self) -> threading.Thread:
        """Serve in a background thread (tests, benchmarks); :meth:`stop` ends it."""
        t = threading.Thread(target=lambda: self.server.run(sockets=[self.sock]), daemon=True)
        t.start()
        while not self.server.started and t.is_alive():
            threading.Event().wait(0.02)
        return t

    def stop(self, thread: threading.Thread | None = None) -> None:
        self.server.should_exit = True
        if thread is not None:
            thread.join(timeout=10)
        self.explorer.close()
