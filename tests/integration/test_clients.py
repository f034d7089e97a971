"""Functions built as Lambda builds them (``build()``), their AWS clients from
``shared/adapters/clients.py`` (botocore, no boto3), against moto."""

from __future__ import annotations

import json
from typing import Any

import boto3
import botocore.session
import pytest

from functions.admin import handler as admin
from functions.capture import handler as capture
from infra.provision import create_table
from shared.adapters.clients import AwsClients, use_session
from shared.adapters.secrets import signing_secret
from shared.domain.clock import FixedClock
from tests.events import json_post, rest_event
from tests.integration.conftest import TABLE

FORM = {
    "email": "Hanako.Suzuki@Example.co.jp",
    "last_name": "鈴木",
    "first_name": "花子",
    "company": "株式会社サンプル",
    "form_type": "inquiry",
    "message": "導入について相談したい",
}


def test_a_lead_captured_by_one_built_function_is_read_by_another(
    aws: None, monkeypatch: pytest.MonkeyPatch, clock: FixedClock, lambda_context: Any
) -> None:
    # Given the table, and capture and admin built from the environment as on Lambda
    create_table(boto3.client("dynamodb"), TABLE)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    capture_app, admin_app = capture.build(clock), admin.build(clock)

    # When a lead posts the form and sales look it up
    posted = capture.lambda_handler(
        json_post(FORM, headers={"Accept": "application/json"}), lambda_context, capture_app
    )
    lead_id = json.loads(posted["body"])["lead_id"]
    event = rest_event("GET", f"/leads/{lead_id}")
    event.update(resource="/leads/{lead_id}", pathParameters={"lead_id": lead_id})
    found = admin.lambda_handler(event, lambda_context, admin_app)

    # Then each went through its own clients to the same table
    assert posted["statusCode"] == 201
    assert found["statusCode"] == 200
    assert json.loads(found["body"])["lead"]["email"] == "Hanako.Suzuki@example.co.jp"


def test_the_signing_secret_is_read_from_secrets_manager_with_the_functions_clients(
    aws: None,
) -> None:
    secret = "a-secret-kept-in-secrets-manager-0123456789"
    arn = boto3.client("secretsmanager").create_secret(Name="signing", SecretString=secret)["ARN"]

    assert signing_secret({"SIGNING_SECRET_ARN": arn}, clients=AwsClients()) == secret.encode()


def test_a_harness_session_gives_the_clients_of_functions_built_after_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-northeast-1")
    harness = botocore.session.get_session()
    made: list[str] = []
    harness.register("creating-client-class", lambda class_attributes, **_: made.append("sqs"))

    previous = use_session(harness)
    try:
        AwsClients().client("sqs")  # a build's clients, as the fault suite builds them
    finally:
        assert use_session(previous) is harness
    AwsClients().client("sqs")  # after it: a session of the function's own

    assert made == ["sqs"]
