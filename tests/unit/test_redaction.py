"""Personal data out of log lines: the rules (shared.domain.redaction) and the functions' logger
(functions.observability) that applies them to every line."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass
from typing import Any

import pytest
from aws_lambda_powertools import Logger
from pydantic import BaseModel, ValidationError

from functions.observability import build_logger
from shared.domain.redaction import REDACTED, redact, redact_text

EMAIL = "pii-probe-7f3a@example.co.jp"
NAME = "個人情報 太郎"
PHONE = "090-1234-5678"
ADDRESS = "東京都千代田区丸の内1-2-3"
PROBES = (EMAIL, NAME, PHONE, ADDRESS, "個人情報", "+819012345678", "09012345678")


def clean(text: str) -> bool:
    return not any(probe in text for probe in PROBES)


# -- by pattern, in any text ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"identities failed the check: {EMAIL}", "identities failed the check: [email]"),
        (f"smtp; 550 5.1.1 <{EMAIL}>: user unknown", "smtp; 550 5.1.1 <[email]>: user unknown"),
        ("Ｅメール 山田＠例え.jp", "Ｅメール [email]"),
        ("?email=pii-probe-7f3a%40example.co.jp", "?email=[redacted]"),
        (f"tel {PHONE} / +81-90-1234-5678", "tel [phone] / [phone]"),
        ("+819012345678, 09012345678, 03(1234)5678", "[phone], [phone], [phone]"),
        ("〒100-0005 東京都千代田区丸の内1-1-1", "[postcode] [address]"),
        ("千代田区丸の内1-2-3 まで", "[address] まで"),
    ],
)
def test_addresses_and_phone_numbers_are_found_in_any_text(text: str, expected: str) -> None:
    assert redact_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T01:00:00.000Z",
        "2026-12-03 16:04:22,477+0000",
        "52fdfc07-2182-154f-163f-5f0f9a621d72",
        "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
        "sequence 000000000000000000001, line 92, status 503",
        "lead 4f9a1c2e8b7d4e6fa0c1d2e3f4a5b6c7 handed off; prefecture 大阪府",
        "arn:aws:sts::123456789012:assumed-role/sales-ops/alice",
        "company 株式会社サンプル, exception_name ValueError, function_name capture",
    ],
)
def test_what_identifies_records_and_events_is_kept(text: str) -> None:
    assert redact_text(text) == text


@pytest.mark.parametrize(
    "text",
    [
        f"Lead(lead_id='abc', email='{EMAIL}', name='{NAME}', company='株式会社サンプル')",
        f"{{'name': '{NAME}', 'Item': {{'family_name': {{'S': '個人情報'}}}}}}",
        f'{{"firstName": "太郎", "lastName": "個人情報", "name": "{NAME}"}}',
        f'{{\\"name\\": \\"{NAME}\\", \\"destination\\": [\\"{EMAIL}\\"]}}',
        f"name={NAME.replace(' ', '+')}&email=x",
    ],
)
def test_names_are_found_by_the_key_that_holds_them_in_text(text: str) -> None:
    redacted = redact_text(text)

    assert clean(redacted)
    assert REDACTED in redacted


def test_the_input_quoted_by_a_validation_error_is_redacted() -> None:
    class Person(BaseModel):
        name: str
        age: int

    with pytest.raises(ValidationError) as caught:
        Person.model_validate({"name": NAME, "age": f"{EMAIL} {ADDRESS}"})

    text = redact_text(str(caught.value))

    assert clean(text)
    assert "age\n  Input should be a valid integer" in text


# -- by key, at any depth ------------------------------------------------------------------


def test_values_under_personal_keys_are_replaced_at_any_depth() -> None:
    @dataclass
    class Recipient:
        emailAddress: str  # SES spells it so
        status: str

    class Profile(BaseModel):
        family_name: str
        company: str

    document = {
        "lead_id": "abc",
        "company": "株式会社サンプル",
        "mail": {
            "destination": [EMAIL],
            "commonHeaders": {"to": [EMAIL], "subject": f"{NAME} 様"},
            "messageId": "0100-abc",
        },
        "bounce": {"bouncedRecipients": [Recipient(EMAIL, "5.1.1")]},
        "profiles": (Profile(family_name="個人情報", company="株式会社サンプル"),),
        "Phone_Normalized": "+819012345678",
        "postal-code": "100-0005",
        "count": 3,
        "ok": True,
    }

    redacted = redact(document)

    assert clean(json.dumps(redacted, ensure_ascii=False))
    assert redacted == {
        "lead_id": "abc",
        "company": "株式会社サンプル",
        "mail": {"destination": REDACTED, "commonHeaders": REDACTED, "messageId": "0100-abc"},
        "bounce": {"bouncedRecipients": [{"emailAddress": REDACTED, "status": "5.1.1"}]},
        "profiles": [{"family_name": REDACTED, "company": "株式会社サンプル"}],
        "Phone_Normalized": REDACTED,
        "postal-code": REDACTED,
        "count": 3,
        "ok": True,
    }


def test_a_structure_too_deep_or_an_object_without_text_does_not_break_a_line() -> None:
    class Broken:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    nested: dict[str, Any] = {}
    deepest = nested
    for _ in range(50):
        deepest["next"] = {}
        deepest = deepest["next"]
    deepest["email"] = EMAIL

    assert clean(json.dumps(redact(nested), ensure_ascii=False))
    assert redact(Broken()) == REDACTED


# -- the functions' logger -----------------------------------------------------------------


@pytest.fixture
def written() -> Any:
    """A function's logger and what it writes."""
    stream = io.StringIO()

    def logger(service: str) -> tuple[Logger, io.StringIO]:
        built = build_logger(service)
        handler = built.registered_handler
        assert isinstance(handler, logging.StreamHandler)
        handler.setStream(stream)
        return built, stream

    return logger


def test_every_part_of_a_log_line_is_redacted(written: Any) -> None:
    logger, stream = written("redaction-test")
    logger.append_keys(recipient=EMAIL)

    try:
        raise ValueError(f"could not store {{'name': '{NAME}'}} for {EMAIL} at {ADDRESS}")
    except ValueError:
        logger.exception(
            "lead %s not stored (%s)",
            EMAIL,
            PHONE,
            extra={"lead": {"email": EMAIL, "name": NAME, "company": "株式会社サンプル"}},
        )

    line = json.loads(stream.getvalue())
    assert clean(stream.getvalue())
    assert line["message"] == "lead [email] not stored ([phone])"
    assert line["lead"] == {"email": REDACTED, "name": REDACTED, "company": "株式会社サンプル"}
    assert line["recipient"] == "[email]"
    assert line["exception"].endswith(
        "ValueError: could not store {'name': [redacted]} for [email] at [address]"
    )
    assert line["stack_trace"]["value"] == line["exception"].splitlines()[-1].split(": ", 1)[1]
    assert line["service"] == "redaction-test"


def test_a_logger_of_the_same_name_made_before_redacts_too(written: Any) -> None:
    # Powertools keeps the first handler of a name: one made without the builder
    Logger(service="redaction-test-early")

    logger, stream = written("redaction-test-early")
    logger.info("plain", extra={"email": EMAIL})

    line = json.loads(stream.getvalue())
    assert line["email"] == REDACTED
    assert line["service"] == "redaction-test-early"


def handle_nothing(event: Any, context: Any) -> None:
    return None


def test_every_handler_logs_each_line_with_its_invocations_lambda_context(
    written: Any, lambda_context: Any
) -> None:
    import importlib

    from functions.observability import logged
    from infra.wiring import FUNCTIONS

    # Every function's handler is the logged one
    for spec in FUNCTIONS:
        module_name, _, name = spec.handler.rpartition(".")
        handler = getattr(importlib.import_module(module_name), name)
        assert handler.__wrapped__.__name__ == "lambda_handler", spec.name
        assert handler.__code__ is logged("x")(handle_nothing).__code__, spec.name

    # and what a logged handler writes carries the request id and the cold start
    logger, stream = written("context-test")

    @logged("context-test")
    def handle(event: dict[str, Any], context: Any) -> str:
        logger.info("handled", extra={"email": EMAIL})
        return "ok"

    assert handle({}, lambda_context) == "ok"
    line = json.loads(stream.getvalue())
    assert line["function_request_id"] == lambda_context.aws_request_id
    assert line["function_name"] == lambda_context.function_name
    assert isinstance(line["cold_start"], bool)
    assert line["email"] == REDACTED
