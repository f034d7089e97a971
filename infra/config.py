"""Deployment settings: the ``lead-nurture`` block of the CDK context.

Defaults live here and are mirrored in ``cdk.json`` so a plain ``cdk synth`` and an
in-process synth (the infra tests) build the same stack. Override per deployment
with ``cdk deploy -c lead-nurture='{...}'`` or by editing ``cdk.json``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from infra.wiring import FunctionSpec

CONTEXT_KEY = "lead-nurture"
# ``cdk synth -c stage=production``: the deployment real visitors use.
STAGE_KEY = "stage"
PRODUCTION = "production"
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})  # noqa: S104 - names

# The values CloudWatch Logs accepts for a log group's retention.
# fmt: off
LOG_RETENTION_DAYS = frozenset({
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731,
    1096, 1827, 2192, 2557, 2922, 3288, 3653,
})
# fmt: on


def _default_origins() -> list[str]:
    return ["http://localhost:3000"]


class SenderConfig(BaseModel):
    """Who the nurture emails come from, shown in every footer as Japanese law requires
    (送信者の名称, 住所, 問合せ先). The defaults are samples: set your own per deployment."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    company_name: str = Field(default="株式会社サンプル", min_length=1)
    # The product the emails are about ({{ brand.product_name }} in templates and subjects).
    product_name: str = Field(default="Flowlane", min_length=1, max_length=50)
    from_address: str = Field(default="株式会社サンプル <news@example.co.jp>", min_length=3)
    postal_address: str = Field(
        default="〒100-0005 東京都千代田区丸の内1-1-1 サンプルビル10F", min_length=1
    )
    contact_email: str = Field(default="marketing@example.co.jp", min_length=3)
    site_url: str = Field(default="https://www.example.co.jp", min_length=1)
    privacy_url: str = "https://www.example.co.jp/privacy"

    @field_validator("product_name")
    @classmethod
    def _one_line(cls, name: str) -> str:
        # It goes into subject lines, where a line break would end the header.
        if not name.isprintable() or name != name.strip():
            raise ValueError("product_name must be one line without surrounding spaces")
        return name

    @property
    def from_domain(self) -> str:
        return self.from_address.rstrip(">").rpartition("@")[2]


class LifecycleConfig(BaseModel):
    """How long leads wait between stages (days)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # No engagement for this long: the lead becomes dormant and enters re-engagement.
    dormant_after_days: int = Field(default=90, ge=7)
    # A lead lost by sales becomes dormant (and enters re-engagement) after this long.
    lost_dormant_after_days: int = Field(default=60, ge=1)
    # A lead sales rejected cannot qualify again for this long.
    rejected_cooldown_days: int = Field(default=30, ge=0)
    # Soft bounces in a row before an address is suppressed.
    transient_bounce_limit: int = Field(default=3, ge=1)


class VisitsConfig(BaseModel):
    """The first-party tracking snippet's endpoint (``POST /visits``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Anonymous page views this recent become the lead's when the visitor becomes known
    # (at most 30: the exactly-once markers of scored events are kept 30 days).
    attribution_days: int = Field(default=30, ge=1, le=30)
    # At most one revisit alert to sales per lead in this many hours.
    revisit_alert_hours: int = Field(default=24, ge=1, le=24 * 90)
    # A beacon is a few hundred bytes; anything much larger is not the snippet's.
    max_body_bytes: int = Field(default=2048, ge=512, le=65536)


class Throttle(BaseModel):
    """API Gateway's token bucket: requests per second, and the burst it absorbs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit: float = Field(gt=0)
    burst_limit: int = Field(gt=0)

    @model_validator(mode="after")
    def _burst_covers_rate(self) -> Throttle:
        if self.burst_limit < self.rate_limit:
            raise ValueError("burst_limit must be >= rate_limit")
        return self


class ThrottlingConfig(BaseModel):
    """The limits of each class of route (``wiring.Route.throttle``). Every route is
    throttled on its own, so a flood on one cannot use up another's: above all, a flood
    of form posts or beacons never gets a person's opt-out refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forms: Throttle = Throttle(rate_limit=20, burst_limit=40)
    beacon: Throttle = Throttle(rate_limit=50, burst_limit=100)
    # Mail providers post RFC 8058 one-click opt-outs in bursts after a campaign.
    opt_out: Throttle = Throttle(rate_limit=50, burst_limit=100)
    admin: Throttle = Throttle(rate_limit=10, burst_limit=20)


# The rates at which SES puts a sending account under review.
SES_REVIEW_BOUNCE_PERCENT = 5.0
SES_REVIEW_COMPLAINT_PERCENT = 0.1


class ReputationConfig(BaseModel):
    """Alarms on the bounce and complaint rates of the stack's sends, set below the rates
    at which SES reviews the account, so there is time to act."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Hard bounces per email sent, in percent.
    bounce_rate_percent: float = Field(default=4.0, gt=0, lt=SES_REVIEW_BOUNCE_PERCENT)
    # Complaints per email sent, in percent.
    complaint_rate_percent: float = Field(default=0.08, gt=0, lt=SES_REVIEW_COMPLAINT_PERCENT)
    # The window the rates are taken over: long enough for complaints, which arrive hours
    # after the send; at most a day, or a problem would go unseen for days.
    window_hours: int = Field(default=24, ge=1, le=24)
    # Fewer sends than this in the window say nothing about the list: no alarm.
    min_sends: int = Field(default=500, ge=1)


class WarmupConfig(BaseModel):
    """A new sending domain's daily cap: ``daily[i]`` emails a day in week ``i`` from
    ``start``; none once the list is over. Empty: no cap."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: date | None = None
    daily: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)

    @model_validator(mode="after")
    def _both(self) -> WarmupConfig:
        if (self.start is None) != (not self.daily):
            raise ValueError("warmup needs both start and daily, or neither")
        return self


class DeploymentConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sender: SenderConfig = SenderConfig()
    # Marketing emails per lead per rolling 7 days.
    frequency_cap: int = Field(default=3, ge=1, le=50)
    # The public base URL of the API when a custom domain fronts it; default: the stage URL.
    public_api_url: str | None = None
    lifecycle: LifecycleConfig = LifecycleConfig()
    visits: VisitsConfig = VisitsConfig()
    reputation: ReputationConfig = ReputationConfig()
    warmup: WarmupConfig = WarmupConfig()

    # Origins whose browsers may post forms (the function answers CORS itself).
    cors_origins: list[str] = Field(default_factory=_default_origins, min_length=1)
    # Origins a form may send the visitor back to after a post (open-redirect guard).
    redirect_origins: list[str] = Field(default_factory=_default_origins, min_length=1)
    throttling: ThrottlingConfig = ThrottlingConfig()
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
    # The same for opt-outs, counted apart from every other route.
    waf_opt_out_ip_rate_limit: int = Field(default=3000, ge=10, le=2_000_000_000)

    def not_for_production(self) -> list[str]:
        """What a production deployment must not keep: origins on this machine or in
        plain http (the defaults are the local stack's), and a plain-http API URL."""
        problems = []
        for name in ("cors_origins", "redirect_origins"):
            for origin in getattr(self, name):
                parts = urlsplit(origin)
                if parts.scheme != "https" or (parts.hostname or "") in LOCAL_HOSTS:
                    problems.append(f"{name}: {origin} (an https origin of the site is needed)")
        if self.public_api_url and urlsplit(self.public_api_url).scheme != "https":
            problems.append(f"public_api_url: {self.public_api_url} (https is needed)")
        return problems

    @classmethod
    def from_context(cls, raw: Any) -> DeploymentConfig:
        """Validate the context value; a missing block means all defaults."""
        return cls.model_validate(raw or {})

    @classmethod
    def from_cdk_json(cls, path: Path) -> DeploymentConfig:
        """The ``lead-nurture`` block of a ``cdk.json``; all defaults when there is no file."""
        if not path.is_file():
            return cls()
        context = json.loads(path.read_text(encoding="utf-8")).get("context", {})
        return cls.from_context(context.get(CONTEXT_KEY))

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


@dataclass(frozen=True)
class Resources:
    """Names and addresses of what the functions talk to, on AWS or in the local stack."""

    table_name: str
    api_url: str  # base URL of the stage, ending in "/"
    configuration_set: str
    queue_urls: Mapping[str, str] = field(default_factory=dict)
    # Each queue's dead-letter queue, by queue name; each stream consumer's on-failure
    # queue, by function name.
    dead_letter_queue_urls: Mapping[str, str] = field(default_factory=dict)
    stream_failure_queue_urls: Mapping[str, str] = field(default_factory=dict)
    topic_arns: Mapping[str, str] = field(default_factory=dict)
    signing_secret_arn: str | None = None  # AWS: Secrets Manager
    signing_secret: str | None = None  # local stack only


def function_environment(
    spec: FunctionSpec, config: DeploymentConfig, resources: Resources
) -> dict[str, str]:
    """The environment of one function, the same on Lambda and in the local stack."""
    api_url = (config.public_api_url or resources.api_url).rstrip("/")
    environment = {
        "TABLE_NAME": resources.table_name,
        "POWERTOOLS_SERVICE_NAME": spec.name,
        "POWERTOOLS_LOG_LEVEL": "INFO",
        "CORS_ORIGINS": ",".join(config.cors_origins),
        "REDIRECT_ORIGINS": ",".join(config.redirect_origins),
        "CONSENT_REQUIRED_FORMS": ",".join(config.consent_required_forms),
        "CONSENT_VERSION": config.consent_version,
        "MAX_BODY_BYTES": str(config.max_body_bytes),
        "DEFAULT_TIMEZONE": config.default_timezone,
    }
    for queue in spec.produces:
        environment[queue.url_variable] = resources.queue_urls[queue.name]
    # A consumer puts a record it can never process straight on its dead-letter queue.
    consumed = spec.consumes
    if consumed is not None and consumed.name in resources.dead_letter_queue_urls:
        environment[consumed.dead_letter_url_variable] = resources.dead_letter_queue_urls[
            consumed.name
        ]
    if spec.stream is not None and spec.name in resources.stream_failure_queue_urls:
        environment[spec.stream_failure_url_variable] = resources.stream_failure_queue_urls[
            spec.name
        ]
    for topic in spec.publishes:
        environment[f"{topic.upper().replace('-', '_')}_TOPIC_ARN"] = resources.topic_arns[topic]
    lifecycle = config.lifecycle
    environment.update(
        DORMANT_AFTER_DAYS=str(lifecycle.dormant_after_days),
        LOST_DORMANT_AFTER_DAYS=str(lifecycle.lost_dormant_after_days),
        REJECTED_COOLDOWN_DAYS=str(lifecycle.rejected_cooldown_days),
        TRANSIENT_BOUNCE_LIMIT=str(lifecycle.transient_bounce_limit),
        VISIT_ATTRIBUTION_DAYS=str(config.visits.attribution_days),
        REVISIT_ALERT_HOURS=str(config.visits.revisit_alert_hours),
        VISIT_MAX_BODY_BYTES=str(config.visits.max_body_bytes),
        # The sending guard pauses at the reputation alarms' own limits.
        BOUNCE_RATE_PERCENT=str(config.reputation.bounce_rate_percent),
        COMPLAINT_RATE_PERCENT=str(config.reputation.complaint_rate_percent),
        GUARD_MIN_SENDS=str(config.reputation.min_sends),
    )
    if config.warmup.start is not None:
        environment.update(
            WARMUP_START=config.warmup.start.isoformat(),
            WARMUP_DAILY=",".join(str(n) for n in config.warmup.daily),
        )
    if spec.signs_links:
        if resources.signing_secret_arn:
            environment["SIGNING_SECRET_ARN"] = resources.signing_secret_arn
        if resources.signing_secret:
            environment["SIGNING_SECRET"] = resources.signing_secret
    if spec.sends_email:
        sender = config.sender
        environment.update(
            CONFIGURATION_SET=resources.configuration_set,
            FROM_ADDRESS=sender.from_address,
            SENDER_COMPANY_NAME=sender.company_name,
            SENDER_PRODUCT_NAME=sender.product_name,
            SENDER_POSTAL_ADDRESS=sender.postal_address,
            SENDER_CONTACT_EMAIL=sender.contact_email,
            SITE_URL=sender.site_url,
            PRIVACY_URL=sender.privacy_url,
            FREQUENCY_CAP=str(config.frequency_cap),
            UNSUBSCRIBE_URL=f"{api_url}/unsubscribe",
        )
    return {**environment, **spec.environment}
