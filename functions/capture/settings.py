from __future__ import annotations

from pydantic import Field

from shared.domain.leads import FormType
from shared.settings import EnvSettings


class CaptureSettings(EnvSettings):
    table_name: str
    cors_origins: tuple[str, ...] = ()
    # Thank-you and error pages may only be on these origins (no open redirects).
    redirect_origins: tuple[str, ...] = ()
    consent_required_forms: tuple[FormType, ...] = (
        FormType.NEWSLETTER,
        FormType.DOWNLOAD,
        FormType.TRIAL,
    )
    consent_version: str = "2026-01"
    max_body_bytes: int = 32 * 1024
    # A field hidden from people; bots that fill every input fill it too.
    honeypot_field: str = "homepage"
    default_timezone: str = "Asia/Tokyo"
    # A dormant or lost lead who posts a form is reviewed for dormancy again after this.
    dormant_after_days: int = Field(default=90, ge=1)
    # Page views this recent become the lead's when its browser posts a form.
    visit_attribution_days: int = Field(default=30, ge=1, le=30)
