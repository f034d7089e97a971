"""The port through which the domain stores leads (DynamoDB in production, moto in tests)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from shared.leads import Activity, Consent, Lead

Record = Activity | Consent


class EmailTaken(Exception):
    """Another lead already owns this address (a concurrent first post won the race)."""


class VersionConflict(Exception):
    """The lead changed since it was read; read it again and re-apply the change."""


class LeadRepository(Protocol):
    def get(self, lead_id: str) -> Lead | None: ...

    def find_by_email(self, email: str) -> Lead | None: ...

    def create(self, lead: Lead, records: Sequence[Record]) -> None:
        """Store a new lead, its email claim and its records atomically, or raise EmailTaken."""
        ...

    def replace(self, lead: Lead, expected_version: int, records: Sequence[Record]) -> None:
        """Store a changed lead and new records atomically, or raise VersionConflict."""
        ...

    def timeline(self, lead_id: str, limit: int = 100) -> list[Activity]:
        """Newest first."""
        ...

    def consents(self, lead_id: str) -> list[Consent]:
        """Newest first."""
        ...
