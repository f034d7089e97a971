from __future__ import annotations

from collections.abc import Callable
from typing import Any

import boto3
import pytest

from functions.capture.handler import Dependencies, build_app, lambda_handler
from functions.capture.settings import CaptureSettings
from functions.observability import build_logger
from infra.provision import create_table
from shared.adapters.dynamodb import DynamoLeadRepository
from shared.capture import LeadCapture
from shared.clock import FixedClock
from shared.programs import load_programs
from shared.web import Pages

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


def all_items(client: Any) -> list[dict[str, Any]]:
    """Every item in the test table (a Scan is fine in a test, never in the product)."""
    return client.scan(TableName=TABLE)["Items"]  # type: ignore[no-any-return]
