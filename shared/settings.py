"""Function settings from environment variables, validated once per container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class EnvSettings(BaseModel):
    """Field ``foo_bar`` reads ``FOO_BAR``; tuple fields read comma-separated lists."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Self:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name, field in cls.model_fields.items():
            raw = env.get(name.upper())
            if raw is None:
                continue
            is_list = getattr(field.annotation, "__origin__", None) is tuple
            values[name] = [v.strip() for v in raw.split(",") if v.strip()] if is_list else raw
        return cls.model_validate(values)
