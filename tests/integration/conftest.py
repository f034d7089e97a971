from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest

from functions.capture.handler import Dependencies, build_app, lambda_handler
from functions.capture.settings import CaptureSettings
from functions.observability import build_logger
from infra.local.control import LocalControl
from infra.provision import create_table
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import FixedClock, OffsetClock
from shared.domain.programs import load_programs
from shared.services.capture import LeadCapture
from shared.web.pages import Pages

TABLE = "lead-nurture-test"
SITE = "https://www.example.co.jp"


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb")
    create_table(client, TABLE)
    return client


@pytest.fixture
def repository(dynamodb: Any) -> DynamoLeadRepository:
    return DynamoLeadRepository(dynamodb, TABLE)


@pytest.fixture
def capture_settings() -> CaptureSettings:
    return CaptureSettings(
        table_name=TABLE,
        cors_origins=(SITE, "https://lp.example.co.jp"),
        redirect_origins=(SITE,),
        max_body_bytes=16 * 1024,
    )


@pytest.fixture
def post(
    repository: DynamoLeadRepository,
    capture_settings: CaptureSettings,
    clock: FixedClock,
    lambda_context: Any,
) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Send an API Gateway event through the capture handler, as Lambda would."""
    capture = LeadCapture(repository, load_programs(), clock, capture_settings.consent_version)
    app = build_app(Dependencies(capture_settings, capture, Pages(), build_logger("capture")))

    def send(event: dict[str, Any]) -> dict[str, Any]:
        return lambda_handler(event, lambda_context, app)

    return send


@pytest.fixture
def local_api() -> Iterator[str]:
    """The local stack's control endpoints (its own LocalControl) on a free port."""
    control = LocalControl(OffsetClock(), tick=lambda: {"scheduler": {"queued": 0}}, about={})

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            answer = control(self.command, self.path, self.rfile.read(length))
            status, headers, body = answer or (404, [], b"{}")
            self.send_response(status)
            for name, value in headers:
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def all_items(client: Any) -> list[dict[str, Any]]:
    """Every item in the test table (a Scan is fine in a test, never in the product)."""
    return client.scan(TableName=TABLE)["Items"]  # type: ignore[no-any-return]
