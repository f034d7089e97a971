"""Signed unsubscribe tokens: the link in every email names its lead and cannot be forged."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

_LEAD_ID = re.compile(r"^[0-9a-f]{32}$")


class InvalidToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class UnsubscribeTokens:
    """HMAC-SHA256 over the lead id; 128 bits of the MAC are plenty for a link."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, lead_id: str) -> str:
        digest = hmac.new(self._secret, f"unsubscribe:{lead_id}".encode(), hashlib.sha256)
        return _b64(digest.digest()[:16])

    def sign(self, lead_id: str) -> str:
        return f"{lead_id}.{self._mac(lead_id)}"

    def verify(self, token: str | None) -> str:
        """The lead id the token names; InvalidToken if it was altered or forged."""
        lead_id, _, mac = (token or "").strip().partition(".")
        expected = self._mac(lead_id).encode("ascii")
        if not _LEAD_ID.match(lead_id) or not hmac.compare_digest(mac.encode(), expected):
            raise InvalidToken("the unsubscribe link is not valid")
        return lead_id
