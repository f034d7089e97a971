"""Deployment settings: the ``lead-nurture`` block of the CDK context.

Defaults live here and are mirrored in ``cdk.json`` so a plain ``cdk synth`` and an
in-process synth (the infra tests) build the same stack. Override per deployment
with ``cdk deploy -c lead-nurture='{...}'`` or by editing ``cdk.json``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from infra.wiring import FunctionSpec

CONTEXT_KEY = "lead-nurture"

# The values CloudWatch Logs accepts for a log group's retention.
# fmt: off
LOG_RETENTION_DAYS = frozenset({
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
})
# fmt: on


def _default_origins() -> list[str]:
    return ["http://localhost:3000"]


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Origins whose browsers may post forms (the function answers CORS itself).
    cors_origins: list[str] = Field(default_factory=_default_origins, min_length=1)
    # Origins a form may send the visitor back to after a post (open-redirect guard).
    redirect_origins: list[str] = Field(default_factory=_default_origins, min_length=1)
    throttle_rate_limit: float = Field(default=20, gt=0)
    throttle_burst_limit: int = Field(default=40, gt=0)
    consent_required_forms: list[str] = Field(
        default_factory=lambda: ["newsletter", "download", "trial"]
    )
    consent_version: str = Field(default="2026-01", min_length=1)
    max_body_bytes: int = Field(default=32768, gt=0, le=10 * 1024 * 1024)  # APIGW caps at 10 MB
    default_timezone: str = Field(default="Asia/Tokyo", min_length=1)
    log_retention_days: int = 30
    # A WAF web ACL on the stage (about USD 8 a month plus requests); turn it off only
    # where another layer (e.g. CloudFront with WAF) already filters the traffic.
    waf_enabled: bool = True
    # Requests one IP may send in any 5 minutes before WAF answers 429.
    waf_ip_rate_limit: int = Field(default=300, ge=10, le=2_000_000_000)

    @classmethod
    def from_context(cls, raw: Any) -> DeploymentConfig:
        """Validate the context value; a missing block means all defaults."""
        return cls.model_validate(raw or {})

    @field_validator("cors_origins", "redirect_origins")
    @classmethod
    def _origins(cls, origins: list[str]) -> list[str]:
        # The function compares the Origin header verbatim, so only bare origins work.
        for origin in origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path:
                raise ValueError(f"not an origin (scheme://host[:port]): {origin!r}")
        return origins

    @field_validator("consent_required_forms")
    @classmethod
    def _form_names(cls, forms: list[str]) -> list[str]:
        # Passed to the functions comma-joined, so a name must not carry a comma.
        for form in forms:
            if not form or "," in form or form != form.strip():
                raise ValueError(f"invalid form name: {form!r}")
        return forms

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, days: int) -> int:
        if days not in LOG_RETENTION_DAYS:
            raise ValueError(f"CloudWatch Logs accepts only {sorted(LOG_RETENTION_DAYS)}")
        return days

    @model_validator(mode="after")
    def _burst_covers_rate(self) -> DeploymentConfig:
        if self.throttle_burst_limit < self.throttle_rate_limit:
            raise ValueError("throttle_burst_limit must be >= throttle_rate_limit")
        return self


def function_environment(
    spec: FunctionSpec, config: DeploymentConfig, *, table_name: str
) -> dict[str, str]:
    """The environment of one function, the same on Lambda and in the local stack."""
    return {
        "TABLE_NAME": table_name,
        "POWERTOOLS_SERVICE_NAME": spec.name,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "CORS_ORIGINS": ",".join(config.cors_origins),
        "REDIRECT_ORIGINS": ",".join(config.redirect_origins),
        "CONSENT_REQUIRED_FORMS": ",".join(config.consent_required_forms),
        "CONSENT_VERSION": config.consent_version,
        "MAX_BODY_BYTES": str(config.max_body_bytes),
        "DEFAULT_TIMEZONE": config.default_timezone,
        **spec.environment,
    }
