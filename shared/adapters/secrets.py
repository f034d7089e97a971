"""The unsubscribe-link signing secret: Secrets Manager on AWS, an env value locally."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from shared.adapters.clients import AwsClients


def signing_secret(
    env: Mapping[str, str] | None = None, client: Any = None, clients: AwsClients | None = None
) -> bytes:
    """The secret; its Secrets Manager client, when none is given, comes from ``clients``
    (the function's, so that it shares their session)."""
    env = os.environ if env is None else env
    if env.get("SIGNING_SECRET"):
        return env["SIGNING_SECRET"].encode("utf-8")
    arn = env.get("SIGNING_SECRET_ARN")
    if not arn:
        raise RuntimeError("set SIGNING_SECRET_ARN (or SIGNING_SECRET for the local stack)")
    if client is None:
        client = (clients or AwsClients()).client("secretsmanager")
    value = client.get_secret_value(SecretId=arn)["SecretString"]
    return str(value).encode("utf-8")
