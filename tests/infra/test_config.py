"""The deployment config: defaults, cdk.json and what it refuses."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from infra.config import CONTEXT_KEY, LOG_RETENTION_DAYS, DeploymentConfig
from tests.infra.conftest import cdk_context

pytestmark = pytest.mark.infra


def test_cdk_json_spells_out_the_defaults() -> None:
    assert cdk_context()[CONTEXT_KEY] == DeploymentConfig().model_dump()


def test_defaults() -> None:
    config = DeploymentConfig.from_context(None)
    assert config.cors_origins == ["http://localhost:3000"]
    assert config.redirect_origins == ["http://localhost:3000"]
    assert (config.throttle_rate_limit, config.throttle_burst_limit) == (20, 40)
    assert config.consent_required_forms == ["newsletter", "download", "trial"]
    assert config.consent_version == "2026-01"
    assert config.max_body_bytes == 32768
    assert config.default_timezone == "Asia/Tokyo"
    assert config.log_retention_days == 30


@pytest.mark.parametrize(
    "override",
    [
        {"cors_origins": ["https://www.example.co.jp/contact"]},  # a URL, not an origin
        {"redirect_origins": ["www.example.co.jp"]},
        {"cors_origins": []},
        {"consent_required_forms": ["newsletter,trial"]},
        {"throttle_rate_limit": 50, "throttle_burst_limit": 40},
        {"log_retention_days": 31},
        {"max_body_bytes": 0},
        {"cors_origin": ["https://www.example.co.jp"]},  # misspelt key
    ],
)
def test_refuses_what_would_deploy_wrong(override: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        DeploymentConfig.from_context(override)


def test_every_accepted_retention_maps_to_a_cdk_value() -> None:
    from infra.constructs.observability import RETENTION_BY_DAYS

    assert set(RETENTION_BY_DAYS) == LOG_RETENTION_DAYS
