"""moto in server mode on loopback, for programs only.

moto's own server answers any web page (it turns CORS on for every origin and checks
no signature), so a page open in the developer's browser could read or change the
local table, queues and topics. This server is moto's application behind a guard
that refuses requests a browser made or addressed under a foreign host name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Iterable
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import BaseWSGIServer, make_server

from infra.local import moto_fixes
from infra.local.control import refuse_browsers

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def guarded(app: WsgiApp, hosts: Collection[str]) -> WsgiApp:
    """``app`` behind ``refuse_browsers``."""

    def guard(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        refused = refuse_browsers(headers, hosts)
        if refused is None:
            return app(environ, start_response)
        status, response_headers, body = refused
        start_response(
            f"{status} Forbidden", [*response_headers, ("Content-Length", str(len(body)))]
        )
        return [body]

    return guard


class LocalMotoServer:
    def __init__(self, host: str, port: int, hosts: Collection[str]) -> None:
        self._host = host
        self._port = port
        self._hosts = hosts
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None
        self._undo: moto_fixes.Undo | None = None

    def start(self) -> None:
        """Serve moto, with the fixes that let it run for weeks (``moto_fixes``)."""
        self._undo = moto_fixes.install()
        app = guarded(
            moto_fixes.one_at_a_time(DomainDispatcherApplication(create_backend_app)),
            self._hosts,
        )
        self._server = make_server(
            self._host, self._port, app, threaded=True, request_handler=MotoRequestHandler
        )
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
        if self._thread is not None:
            self._thread.join()
        if self._undo is not None:
            self._undo()
            self._undo = None
