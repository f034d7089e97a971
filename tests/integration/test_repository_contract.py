"""The contracts of the ports (``LeadRepository``, ``SendLedger``, ``DueIndex``), run
against the DynamoDB adapters (on moto) and the in-memory fakes (``tests/fakes.py``): a
use case tested on the fakes behaves the same on the table."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.adapters.due import DynamoDueIndex
from shared.adapters.items import due_shard
from shared.adapters.ledgers import DynamoSendLedger
from shared.domain.leads import (
    Activity,
    ActivityType,
    Consent,
    ConsentState,
    Enrolment,
    FormType,
    Lead,
    Seats,
    SendRecord,
    new_id,
)
from shared.domain.machine_engagement import MailRecord
from shared.ports import (
    DueIndex,
    EmailTaken,
    LeadRepository,
    Marker,
    Revision,
    SendLedger,
    Snapshot,
    UnknownLead,
    VersionConflict,
)
from tests.builders import a_lead
from tests.fakes import InMemoryDueIndex, InMemoryLeads, InMemorySendLedger
from tests.integration.conftest import TABLE

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest.fixture(params=["dynamodb", "memory"])
def leads(request: pytest.FixtureRequest) -> LeadRepository:
    if request.param == "memory":
        return InMemoryLeads()
    repository: LeadRepository = request.getfixturevalue("repository")
    return repository


def new_lead(email: str = "taro@example.co.jp", **fields: Any) -> Lead:
    return a_lead(at=NOW, email=email, **fields)


def created(leads: LeadRepository, lead: Lead | None = None) -> Lead:
    lead = lead or new_lead()
    revised = leads.revise(lead.lead_id, lambda _: Revision(lead))
    assert revised.after is not None
    return revised.after


def renamed(company: str) -> Any:
    def change(snapshot: Snapshot) -> Revision:
        if snapshot.lead is None:
            raise UnknownLead("-")
        return Revision(snapshot.lead.model_copy(update={"company": company}))

    return change


def test_a_lead_is_created_with_its_address_claimed(leads: LeadRepository) -> None:
    lead = created(leads)
    assert leads.get(lead.lead_id) == lead
    assert lead.version == 1
    assert leads.lead_of("TARO@example.co.jp") == (lead.lead_id, False)
    assert leads.find_by_email("taro@example.co.jp") == lead
    with pytest.raises(EmailTaken):
        created(leads, new_lead())
    assert leads.lead_of("nobody@example.co.jp") == (None, False)


def test_a_change_bumps_the_version_and_none_writes_nothing(leads: LeadRepository) -> None:
    lead = created(leads)
    revised = leads.revise(lead.lead_id, renamed("株式会社サンプル"))
    assert revised.changed
    assert revised.after is not None
    assert (revised.after.version, revised.after.company) == (2, "株式会社サンプル")
    assert leads.get(lead.lead_id) == revised.after
    nothing = leads.revise(lead.lead_id, lambda _: None)
    assert (nothing.changed, nothing.before) == (False, revised.after)


def test_a_change_that_met_another_writer_is_applied_again_to_what_it_wrote(
    leads: LeadRepository,
) -> None:
    lead = created(leads)
    calls = []

    def change(snapshot: Snapshot) -> Revision:
        assert snapshot.lead is not None
        calls.append(snapshot.lead.version)
        if len(calls) == 1:  # another writer commits between this read and its write
            leads.revise(lead.lead_id, renamed("割り込み"))
        return Revision(snapshot.lead.model_copy(update={"department": "営業部"}))

    revised = leads.revise(lead.lead_id, change)
    assert calls == [1, 2]
    stored = leads.get(lead.lead_id)
    assert stored is not None
    assert (stored.company, stored.department, stored.version) == ("割り込み", "営業部", 3)
    assert revised.after == stored


def test_a_change_that_always_meets_another_writer_gives_up(leads: LeadRepository) -> None:
    lead = created(leads)

    def change(snapshot: Snapshot) -> Revision:
        assert snapshot.lead is not None
        leads.revise(lead.lead_id, renamed(new_id()))
        return Revision(snapshot.lead.model_copy(update={"department": "x"}))

    with pytest.raises(VersionConflict):
        leads.revise(lead.lead_id, change, max_revisions=3)


def test_a_marker_makes_a_repeated_request_a_duplicate_with_its_note(
    leads: LeadRepository,
) -> None:
    lead = created(leads)
    once = Marker(key="ses:0001", at=NOW)

    def noted(company: str) -> Any:
        def change(snapshot: Snapshot) -> Revision:
            assert snapshot.lead is not None
            updated = snapshot.lead.model_copy(update={"company": company})
            return Revision(updated, note={"company": company})

        return change

    first = leads.revise(lead.lead_id, noted("A"), marker=once)
    again = leads.revise(lead.lead_id, noted("B"), marker=once)
    assert (first.duplicate, again.duplicate) == (False, True)
    assert dict(again.note) == {"company": "A"}
    stored = leads.get(lead.lead_id)
    assert stored is not None
    assert stored.company == "A"
    # A windowed key is a new request once the window has passed
    hourly = Marker(key="post:abc", at=NOW, window=timedelta(hours=1))
    later = Marker(key="post:abc", at=NOW + timedelta(hours=2), window=timedelta(hours=1))
    assert not leads.revise(lead.lead_id, noted("C"), marker=hourly).duplicate
    assert leads.revise(lead.lead_id, noted("D"), marker=hourly).duplicate
    assert not leads.revise(lead.lead_id, noted("E"), marker=later).duplicate


def test_records_are_kept_in_time_order(leads: LeadRepository) -> None:
    lead = created(leads)
    first = Activity(lead_id=lead.lead_id, type=ActivityType.FORM_SUBMITTED, at=NOW)
    second = Activity(
        lead_id=lead.lead_id, type=ActivityType.EMAIL_SENT, at=NOW + timedelta(minutes=1)
    )
    consent = Consent(given=True, at=NOW, form_type=FormType.DOWNLOAD, wording_version="v1")
    for records in ([second], [first, consent]):
        leads.revise(
            lead.lead_id,
            lambda snapshot, records=records: Revision(snapshot.lead, records),  # type: ignore[arg-type]
        )
    assert leads.history(lead.lead_id) == [first, second]
    assert leads.timeline(lead.lead_id, limit=1) == [second]
    assert leads.consents(lead.lead_id) == [consent]


def test_an_emails_record_is_read_with_the_lead_and_written_with_its_version(
    leads: LeadRepository,
) -> None:
    lead = created(leads)
    seen: list[MailRecord | None] = []

    def delivered(snapshot: Snapshot) -> Revision:
        assert snapshot.lead is not None
        seen.append(snapshot.mail)
        version = snapshot.mail.version + 1 if snapshot.mail else 1
        record = MailRecord(
            lead_id=lead.lead_id, message_id="m-1", delivered_at=NOW, version=version
        )
        return Revision(snapshot.lead, mail=record)

    leads.revise(lead.lead_id, delivered, mail="m-1")
    leads.revise(lead.lead_id, delivered, mail="m-1")
    assert seen[0] is None
    assert seen[1] is not None
    assert seen[1].version == 1


def test_an_events_seats_are_read_with_the_lead_and_written_with_their_version(
    leads: LeadRepository,
) -> None:
    lead = created(leads)
    assert leads.seats("night") == Seats(event_id="night")

    def take(snapshot: Snapshot) -> Revision:
        assert snapshot.lead is not None
        assert snapshot.seats is not None
        return Revision(snapshot.lead, seats=snapshot.seats.taking(lead.lead_id))

    leads.revise(lead.lead_id, take, seats="night")
    held = leads.seats("night")
    assert held.holders == {lead.lead_id}
    assert held.version == 1
    leads.save_seats(held.leaving(lead.lead_id))
    with pytest.raises(VersionConflict):
        leads.save_seats(held)  # read before the save above
    assert leads.seats("night").holders == frozenset()


def test_an_erased_lead_is_gone_and_its_address_remembered(leads: LeadRepository) -> None:
    lead = created(leads)
    assert leads.erase(lead.lead_id)
    assert leads.get(lead.lead_id) is None
    assert leads.lead_of(lead.email) == (None, True)
    assert leads.history(lead.lead_id) == []
    assert not leads.erase(lead.lead_id)


@dataclass(frozen=True)
class Ports:
    leads: LeadRepository
    ledger: SendLedger
    due: DueIndex


@pytest.fixture(params=["dynamodb", "memory"])
def ports(request: pytest.FixtureRequest) -> Ports:
    if request.param == "memory":
        memory = InMemoryLeads()
        return Ports(memory, InMemorySendLedger(memory), InMemoryDueIndex(memory))
    client = request.getfixturevalue("dynamodb")
    return Ports(
        request.getfixturevalue("repository"),
        DynamoSendLedger(client, TABLE),
        DynamoDueIndex(client, TABLE),
    )


def test_a_step_is_claimed_once_and_its_record_completes_the_claim(ports: Ports) -> None:
    lead = created(ports.leads)
    assert ports.ledger.claim(lead.lead_id, "welcome#1#a", NOW) is None
    found = ports.ledger.claim(lead.lead_id, "welcome#1#a", NOW)
    assert found is not None
    assert found.status == "sending"
    sent = SendRecord(
        lead_id=lead.lead_id, key="welcome#1#a", status="sent", at=NOW, message_id="m-1"
    )
    ports.leads.revise(lead.lead_id, lambda snapshot: Revision(snapshot.lead, [sent]))  # type: ignore[arg-type]
    again = ports.ledger.claim(lead.lead_id, "welcome#1#a", NOW)
    assert again is not None
    assert (again.status, again.message_id) == ("sent", "m-1")


def test_a_released_claim_may_be_claimed_again(ports: Ports) -> None:
    lead = created(ports.leads)
    assert ports.ledger.claim(lead.lead_id, "welcome#1#b", NOW) is None
    ports.ledger.release(lead.lead_id, "welcome#1#b")
    assert ports.ledger.claim(lead.lead_id, "welcome#1#b", NOW) is None


def due_lead(ports: Ports, due_at: datetime, **fields: Any) -> Lead:
    enrolment = Enrolment(
        program_id="welcome", enrolled_at=NOW, step_id="case_study", due_at=due_at
    )
    consent = ConsentState(opted_in=True, at=NOW, wording_version="v1")
    return created(ports.leads, new_lead(enrolment=enrolment, consent=consent, **fields))


def test_due_leads_are_found_oldest_first_and_a_lease_moves_one_on_once(ports: Ports) -> None:
    early = due_lead(ports, NOW - timedelta(hours=2), email="early@example.co.jp")
    late = due_lead(ports, NOW - timedelta(hours=1), email="late@example.co.jp")
    later = due_lead(ports, NOW + timedelta(hours=1), email="later@example.co.jp")
    found = [lead for shard in range(ports.due.shards) for lead in ports.due.due(shard, NOW, 10)]
    assert sorted(d.lead_id for d in found) == sorted([early.lead_id, late.lead_id])
    assert later.lead_id not in {d.lead_id for d in found}
    (first,) = [d for d in found if d.lead_id == early.lead_id]
    assert (first.program_id, first.step_id) == ("welcome", "case_study")
    shard = due_shard(early.lead_id)
    in_shard = [d.due_at for d in ports.due.due(shard, NOW, 10)]
    assert in_shard == sorted(in_shard)

    assert ports.due.lease(first, NOW + timedelta(minutes=10))
    assert not ports.due.lease(first, NOW + timedelta(minutes=10))  # leased already
    assert early.lead_id not in {d.lead_id for d in ports.due.due(shard, NOW, 10)}
    # a writer holding the lead as read before the lease reads again
    stored = ports.leads.get(early.lead_id)
    assert stored is not None
    assert stored.version == early.version + 1


def test_an_unsubscribed_lead_is_not_due(ports: Ports) -> None:
    lead = due_lead(ports, NOW - timedelta(hours=1), unsubscribed=True)
    assert lead.lead_id not in {
        d.lead_id for shard in range(ports.due.shards) for d in ports.due.due(shard, NOW, 10)
    }
