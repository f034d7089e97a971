from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

# Never reach a real AWS account from a test, whatever the developer's shell has.
for _name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(_name, None)
os.environ.update(
    AWS_ACCESS_KEY_ID="testing",
    AWS_SECRET_ACCESS_KEY="testing",
    AWS_DEFAULT_REGION="ap-northeast-1",
)

from shared.domain.clock import FixedClock  # noqa: E402

# A Monday morning in Tokyo.
START = datetime(2026, 11, 23, 0, 30, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def lambda_context() -> object:
    class Context:
        function_name = "test"
        memory_limit_in_mb = 512
        invoked_function_arn = "arn:aws:lambda:ap-northeast-1:123456789012:function:test"
        aws_request_id = "52fdfc07-2182-154f-163f-5f0f9a621d72"

    return Context()


@pytest.fixture
def aws() -> Iterator[None]:
    from moto import mock_aws

    with mock_aws():
        yield
