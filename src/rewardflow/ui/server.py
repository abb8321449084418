"""A small local HTTP server for the page: standard library only, JSON in and out.

    GET  /               the page
    GET  /api/info       model, rewards, defaults, limits, example prompts
    GET  /api/progress   {"busy", "done", "total", "waiting"} of the running generation
    POST /api/generate   a request (ui/request.py) -> images, scores, seeds, command, Python call

Bad input is a 4xx with {"error": message}; a full queue a 503; nothing returns a traceback.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources

from .request import RequestError
from .studio import Busy, Studio

MAX_BODY = 64 * 1024
log = logging.getLogger("rewardflow.ui")


def page() -> bytes:
    return resources.files("rewardflow").joinpath("assets/ui/index.html").read_bytes()


def make_handler(studio: Studio):
    class Handler(BaseHTTPRequestHandler):
        server_version = "rewardflow-ui"

        def log_message(self, fmt, *args):  # requests to the logger, not stderr
            log.info("%s - %s", self.address_string(), fmt % args)

        def _send(self, status: int, body: bytes, ctype: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, obj) -> None:
            self._send(status, json.dumps(obj).encode(), "application/json")

        def do_GET(self):  # noqa: N802 (the http.server name)
            routes = {
                "/": lambda: self._send(200, page(), "text/html; charset=utf-8"),
                "/api/info": lambda: self._json(200, studio.info()),
                "/api/progress": lambda: self._json(200, studio.progress()),
            }
            routes.get(self.path.split("?")[0], lambda: self._json(404, {"error": f"no page {self.path}"}))()

        def do_POST(self):  # noqa: N802
            if self.path != "/api/generate":
                return self._json(404, {"error": f"no endpoint {self.path}"})
            size = int(self.headers.get("Content-Length") or 0)
            if size > MAX_BODY:
                return self._json(413, {"error": f"request body over {MAX_BODY} bytes"})
            try:
                body = json.loads(self.rfile.read(size) or b"null")
                self._json(200, studio.generate(body))
            except json.JSONDecodeError as exc:
                self._json(400, {"error": f"the request body is not JSON: {exc}"})
            except RequestError as exc:
                self._json(400, {"error": str(exc)})
            except Busy as exc:
                self._json(503, {"error": str(exc)})
            except Exception:  # a bug: logged here, a short message there
                log.exception("generation failed")
                self._json(500, {"error": "generation failed on the server; see its log"})

    return Handler


def serve(studio: Studio, host: str = "127.0.0.1", port: int = 7860) -> ThreadingHTTPServer:
    """A started server (port 0 picks a free one: ``server.server_address``); stop with shutdown()."""
    server = ThreadingHTTPServer((host, port), make_handler(studio))
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="rewardflow-ui", daemon=True).start()
    return server
