"""Signed lead references: the unsubscribe link in every email and the site links (the
reference a visitor's browser exchanges once, so its page views become the lead's) name
their lead and cannot be forged. Each use has its own key derivation (``purpose``), so
an unsubscribe token is no site reference and the other way round."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import unquote_plus, urljoin, urlsplit, urlunsplit

_LEAD_ID = re.compile(r"^[0-9a-f]{32}$")


class InvalidToken(ValueError):
    pass


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class UnsubscribeTokens:
    """HMAC-SHA256 over the lead id; 128 bits of the MAC are plenty for a link."""

    purpose = "unsubscribe"

    def __init__(self, secret: bytes, purpose: str | None = None) -> None:
        if len(secret) < 16:
            raise ValueError("the signing secret must be at least 16 bytes")
        self._secret = secret
        self.purpose = purpose or type(self).purpose

    def site_references(self) -> SiteReferences:
        """Signer of the site links' lead references, with the same secret."""
        return SiteReferences(self._secret)

    def cancellations(self) -> CancelTokens:
        """Signer of event emails' cancellation links, with the same secret."""
        return CancelTokens(self._secret)

    def _mac(self, lead_id: str) -> str:
        digest = hmac.new(self._secret, f"{self.purpose}:{lead_id}".encode(), hashlib.sha256)
        return _b64(digest.digest()[:16])

    def sign(self, lead_id: str) -> str:
        return f"{lead_id}.{self._mac(lead_id)}"

    def verify(self, token: str | None) -> str:
        """The lead id the token names; InvalidToken if it was altered or forged."""
        lead_id, _, mac = (token or "").strip().partition(".")
        expected = self._mac(lead_id).encode("ascii")
        if not _LEAD_ID.match(lead_id) or not hmac.compare_digest(mac.encode(), expected):
            raise InvalidToken(f"the {self.purpose} reference is not valid")
        return lead_id


class CancelTokens:
    """``t=<lead id>.<mac>`` on an event email's cancellation link: the MAC covers the
    event too (``e=<event id>``), so a link cancels that one registration only."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _for(self, event_id: str) -> UnsubscribeTokens:
        return UnsubscribeTokens(self._secret, purpose=f"cancel:{event_id}")

    def sign(self, lead_id: str, event_id: str) -> str:
        return self._for(event_id).sign(lead_id)

    def verify(self, token: str | None, event_id: str | None) -> str:
        """The lead id the token names for ``event_id``; InvalidToken otherwise."""
        if not event_id:
            raise InvalidToken("the cancellation link names no event")
        return self._for(event_id).verify(token)


CANCEL_PATH = "events/cancel"


def cancel_link(unsubscribe_url: str) -> str:
    """The cancellation page's URL: beside the unsubscribe page, on the same API (the
    function that answers email links serves both)."""
    return urljoin(unsubscribe_url, CANCEL_PATH)


# The query parameter that carries a site reference on an email's links into the site.
SITE_REF_PARAMETER = "lnr"


def without_site_ref(url: str) -> str:
    """The URL with its site reference removed: the reference is a bearer credential
    (whoever holds it can be taken for the lead) and is never kept beside a click."""
    parts = urlsplit(url)
    if SITE_REF_PARAMETER not in parts.query:
        return url
    # The other parameters stay as they were written (%20 is not made +, a bare flag
    # gets no =): the link is reported as the email had it.
    kept = [
        pair
        for pair in parts.query.split("&")
        if unquote_plus(pair.partition("=")[0]) != SITE_REF_PARAMETER
    ]
    return urlunsplit(parts._replace(query="&".join(kept)))


class SiteReferences(UnsubscribeTokens):
    """``lnr=<lead id>.<mac>`` on the website links of nurture emails."""

    purpose = "site"
