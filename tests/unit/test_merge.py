"""Merge rules for a second post by the same address, and LeadCapture's retry and enrolment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from shared.domain.clock import FixedClock
from shared.domain.leads import Activity, ActivityType, Consent, Enrolment, FormType, Lead, Stage
from shared.domain.normalize import email_key
from shared.domain.programs import load_programs
from shared.ports import (
    MAX_REVISIONS,
    Change,
    EmailTaken,
    Marker,
    Record,
    Revised,
    Snapshot,
    VersionConflict,
)
from shared.services.capture import (
    CaptureConflict,
    LeadCapture,
    RequestInfo,
    consent_of,
    merge,
    met_at,
    new_lead,
    touch_of,
)
from shared.web.submission import FormSubmission, parse_submission

FIRST_POST = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
LATER_POST = FIRST_POST + timedelta(days=14)
WORDING = "2026-01"
REQUEST = RequestInfo(
    ip="203.0.113.10", user_agent="Mozilla/5.0", referrer="https://www.google.com/"
)
EMAIL = "taro.yamada@example.co.jp"


def submission(**values: str | list[str]) -> FormSubmission:
    values.setdefault("email", EMAIL)
    return parse_submission({k: [v] if isinstance(v, str) else v for k, v in values.items()})


def first_post(**values: str | list[str]) -> Lead:
    post = submission(**values)
    return new_lead(
        post,
        "0a1b2c3d4e5f",
        FIRST_POST,
        touch_of(post, FIRST_POST, REQUEST),
        consent_of(post, FIRST_POST, REQUEST, WORDING),
    )


def later_post(lead: Lead, **values: str | list[str]) -> Lead:
    post = submission(**values)
    return merge(
        lead,
        post,
        touch_of(post, LATER_POST, REQUEST),
        consent_of(post, LATER_POST, REQUEST, WORDING),
    )


# -- new lead ------------------------------------------------------------------------------


def test_a_new_lead_takes_the_normalised_fields_and_both_touches_from_the_post() -> None:
    lead = first_post(
        family_name="山田",
        given_name="太郎",
        company="ＡＢＣ株式会社",
        phone="03-1234-5678",
        source="seminar",
        utm_campaign="autumn",
    )

    assert (lead.email, lead.name, lead.company) == (EMAIL, "山田 太郎", "ABC株式会社")
    assert (lead.phone, lead.phone_normalized) == ("03-1234-5678", "+81312345678")
    assert lead.first_touch == lead.last_touch
    assert (lead.first_touch.source, lead.first_touch.utm_campaign) == ("seminar", "autumn")
    assert lead.first_touch.referrer == "https://www.google.com/"  # from the request
    assert (lead.created_at, lead.updated_at, lead.version) == (FIRST_POST, FIRST_POST, 1)


def test_a_referrer_field_wins_over_the_referer_header() -> None:
    assert first_post(referrer="https://news.example.com/a").first_touch.referrer == (
        "https://news.example.com/a"
    )


def test_consent_evidence_records_what_when_where_and_who() -> None:
    post = submission(form_type="download", form_id="dl-dx-guide", consent="on")

    consent = consent_of(post, FIRST_POST, REQUEST, WORDING)

    assert consent.model_dump(exclude={"consent_id", "page_url"}) == {
        "given": True,
        "at": FIRST_POST,
        "form_type": FormType.DOWNLOAD,
        "form_id": "dl-dx-guide",
        "wording_version": WORDING,
        "ip": "203.0.113.10",
        "user_agent": "Mozilla/5.0",
    }


def test_the_form_may_say_which_consent_wording_it_showed() -> None:
    post = submission(consent="on", consent_version="2026-04-lp")

    assert consent_of(post, FIRST_POST, REQUEST, WORDING).wording_version == "2026-04-lp"


# -- merge -------------------------------------------------------------------------------


def test_non_empty_new_values_win() -> None:
    lead = first_post(company="旧社名株式会社", job_title="課長", phone="03-1234-5678")

    merged = later_post(lead, company="新社名株式会社", job_title="部長")

    assert (merged.company, merged.job_title) == ("新社名株式会社", "部長")
    assert merged.phone == "03-1234-5678"


def test_empty_values_never_erase_what_is_stored() -> None:
    lead = first_post(company="サンプル株式会社", phone="03-1234-5678", name="山田 太郎")

    merged = later_post(lead, company="", phone="   ", name="")

    assert (merged.company, merged.phone, merged.phone_normalized, merged.name) == (
        "サンプル株式会社",
        "03-1234-5678",
        "+81312345678",
        "山田 太郎",
    )


def test_the_address_and_id_stay_as_first_posted_whatever_the_case_of_a_later_post() -> None:
    lead = first_post()

    merged = later_post(lead, email=EMAIL.upper())

    assert (merged.lead_id, merged.email) == (lead.lead_id, EMAIL)


def test_first_touch_is_kept_and_last_touch_updated() -> None:
    lead = first_post(source="google-ads", utm_campaign="spring")

    merged = later_post(
        lead, source="newsletter", utm_campaign="autumn", form_type="seminar_registration"
    )

    assert merged.first_touch == lead.first_touch
    assert (merged.last_touch.at, merged.last_touch.source, merged.last_touch.utm_campaign) == (
        LATER_POST,
        "newsletter",
        "autumn",
    )
    assert merged.last_touch.form_type is FormType.SEMINAR_REGISTRATION


def test_interests_are_the_union_in_order_of_first_mention() -> None:
    lead = first_post(interests=["AI", "IoT"])

    assert later_post(lead, interests=["クラウド", "AI"]).interests == ("AI", "IoT", "クラウド")


def test_every_merge_moves_the_update_time_and_keeps_the_creation_time() -> None:
    once = later_post(first_post())

    assert (once.created_at, once.updated_at) == (FIRST_POST, LATER_POST)


def test_consent_given_once_stays_when_a_later_post_has_none() -> None:
    lead = first_post(consent="on", form_type="download")

    merged = later_post(lead, form_type="inquiry")

    assert merged.consent == lead.consent
    assert (merged.consent.opted_in, merged.consent.at, merged.consent.form_type) == (
        True,
        FIRST_POST,
        FormType.DOWNLOAD,
    )


def test_a_later_consent_records_its_own_time_form_and_wording() -> None:
    merged = later_post(
        first_post(), consent="on", form_type="newsletter", consent_version="2026-11"
    )

    assert merged.consent.model_dump() == {
        "opted_in": True,
        "at": LATER_POST,
        "wording_version": "2026-11",
        "form_type": FormType.NEWSLETTER,
    }


def test_a_fresh_consent_re_subscribes_an_unsubscribed_lead() -> None:
    lead = first_post(consent="on").model_copy(update={"unsubscribed": True})
    assert not lead.mailable

    merged = later_post(lead, consent="on")

    assert (merged.unsubscribed, merged.mailable) == (False, True)


def test_a_post_without_consent_leaves_an_unsubscribed_lead_unsubscribed() -> None:
    lead = first_post(consent="on").model_copy(update={"unsubscribed": True})

    assert later_post(lead).unsubscribed is True


def test_a_suppressed_lead_stays_suppressed_even_with_a_fresh_consent() -> None:
    lead = first_post(consent="on").model_copy(update={"suppressed": True})

    merged = later_post(lead, consent="on")

    assert (merged.suppressed, merged.mailable) == (True, False)


def listed(**values: str | list[str]) -> FormSubmission:
    """A row of an imported list: it may say when the lead was met and whose card it is."""
    values.setdefault("email", EMAIL)
    fields = {k: [v] if isinstance(v, str) else v for k, v in values.items()}
    return parse_submission(fields, listed=True)


def test_a_list_row_starts_the_lead_at_the_date_it_was_met() -> None:
    post = listed(touched_at="2026/10/15", sales_owner="佐藤 健一")

    lead = new_lead(
        post,
        "0a1b2c3d4e5f",
        FIRST_POST,
        touch_of(post, FIRST_POST, REQUEST),
        consent_of(post, FIRST_POST, REQUEST, WORDING),
    )

    # The card was exchanged on 15 October in Japan; the lead was recorded at import.
    assert lead.first_touch.at == datetime(2026, 10, 14, 15, 0, tzinfo=UTC)
    assert lead.last_touch.at == lead.created_at == FIRST_POST
    assert lead.sales_owner == "佐藤 健一"


def test_a_date_met_after_the_import_is_taken_as_the_import_time() -> None:
    post = listed(touched_at="2027/01/01")

    touch = touch_of(post, FIRST_POST, REQUEST)

    assert met_at(post, touch) == touch


def test_a_card_exchanged_before_the_first_known_touch_becomes_the_first_touch() -> None:
    lead = first_post(source="web")
    card = listed(touched_at="2026-10-01 14:30", source="expo")

    merged = merge(
        lead,
        card,
        touch_of(card, LATER_POST, REQUEST),
        consent_of(card, LATER_POST, REQUEST, WORDING),
    )

    assert merged.first_touch.at == datetime(2026, 10, 1, 5, 30, tzinfo=UTC)
    assert merged.first_touch.source == "expo"
    assert (merged.last_touch.at, merged.last_touch.source) == (LATER_POST, "expo")


def test_a_card_exchanged_after_the_first_touch_leaves_it() -> None:
    lead = first_post(source="web")
    card = listed(touched_at="2026/11/10", source="expo")

    merged = merge(
        lead,
        card,
        touch_of(card, LATER_POST, REQUEST),
        consent_of(card, LATER_POST, REQUEST, WORDING),
    )

    assert merged.first_touch == lead.first_touch


def test_an_address_names_the_prefecture_when_no_prefecture_is_given() -> None:
    assert first_post(address="大阪府大阪市北区梅田1-1-1").prefecture == "大阪府"
    assert first_post(address="大阪府大阪市北区", prefecture="東京").prefecture == "東京都"
    assert first_post(address="梅田1-1-1").prefecture is None


# -- LeadCapture with an in-memory repository ----------------------------------------------


class MemoryRepository:
    """The LeadRepository contract in memory, with hooks to lose a race on purpose."""

    def __init__(self) -> None:
        self.leads: dict[str, Lead] = {}
        self.claims: dict[str, str] = {}
        self.records: list[tuple[str, Record]] = []
        self.before_create: Callable[[Lead], None] | None = None
        self.before_replace: Callable[[Lead], None] | None = None
        self.reads = 0
        self.markers: dict[str, dict[str, dict[str, object]]] = {}

    def get(self, lead_id: str) -> Lead | None:
        return self.leads.get(lead_id)

    def find_by_email(self, email: str) -> Lead | None:
        lead_id, _ = self.lead_of(email)
        return self.leads.get(lead_id) if lead_id else None

    def lead_of(self, email: str) -> tuple[str | None, bool]:
        self.reads += 1
        return self.claims.get(email_key(email)), False

    def revise(
        self,
        lead_id: str,
        change: Change,
        *,
        marker: Marker | None = None,
        mail: str | None = None,
        seats: str | None = None,
        known: Snapshot | None = None,
        error_retries: int = 0,
        max_revisions: int = MAX_REVISIONS,
    ) -> Revised:
        for attempt in range(max_revisions):
            before = known.lead if known is not None and attempt == 0 else self.leads.get(lead_id)
            if marker is not None and marker.key in self.markers.get(lead_id, {}):
                return Revised(before, duplicate=True, note=self.markers[lead_id][marker.key])
            revision = change(Snapshot(before))
            if revision is None:
                return Revised(before)
            after = revision.lead.model_copy(
                update={"version": before.version + 1 if before else 1}
            )
            try:
                self.write(before, after)
            except VersionConflict:
                continue
            self.leads[lead_id] = after
            self.records.extend((lead_id, r) for r in revision.records)
            if marker is not None:
                self.markers.setdefault(lead_id, {})[marker.key] = dict(revision.note)
            return Revised(before, after, revision, note=revision.note)
        raise VersionConflict(lead_id)

    def write(self, before: Lead | None, after: Lead) -> None:
        if before is None:
            if self.before_create:
                hook, self.before_create = self.before_create, None
                hook(after)
            if email_key(after.email) in self.claims:
                raise EmailTaken(after.lead_id)
            self.claims[email_key(after.email)] = after.lead_id
            return
        if self.before_replace:
            hook, self.before_replace = self.before_replace, None
            hook(after)
        if self.leads[after.lead_id].version != before.version:
            raise VersionConflict(after.lead_id)

    def timeline(self, lead_id: str, limit: int = 100) -> list[Activity]:
        found = [r for i, r in self.records if i == lead_id and isinstance(r, Activity)]
        return found[::-1][:limit]

    def history(self, lead_id: str) -> list[Activity]:
        return self.timeline(lead_id, limit=len(self.records))[::-1]

    def consents(self, lead_id: str) -> list[Consent]:
        return [r for i, r in self.records if i == lead_id and isinstance(r, Consent)][::-1]

    def erase(self, lead_id: str) -> bool:
        raise AssertionError("capture never erases")


class AlwaysConflicting(MemoryRepository):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, before: Lead | None, after: Lead) -> None:
        self.writes += 1
        raise EmailTaken(after.lead_id)


@pytest.fixture
def repository() -> MemoryRepository:
    return MemoryRepository()


@pytest.fixture
def capture(repository: MemoryRepository, clock: FixedClock) -> LeadCapture:
    ids = iter(f"{n:032x}" for n in range(1, 1000))
    return LeadCapture(repository, load_programs(), clock, WORDING, id_factory=lambda: next(ids))


def activity_types(repository: MemoryRepository, lead_id: str) -> list[ActivityType]:
    return sorted(a.type for a in repository.timeline(lead_id))


def test_a_first_post_creates_the_lead_with_a_form_activity_and_consent_evidence(
    capture: LeadCapture, repository: MemoryRepository, clock: FixedClock
) -> None:
    result = capture.capture(submission(asset="dx-guide.pdf", form_type="download"), REQUEST)

    assert result.created
    lead = repository.leads[result.lead_id]
    assert lead.email == EMAIL
    [activity] = repository.timeline(lead.lead_id)
    assert (activity.type, activity.at) == (ActivityType.FORM_SUBMITTED, clock.now())
    assert activity.details["asset"] == "dx-guide.pdf"
    assert activity.details["form_type"] == "download"
    assert activity.details["created"] is True
    [consent] = repository.consents(lead.lead_id)
    assert (consent.given, consent.ip, consent.user_agent) == (False, "203.0.113.10", "Mozilla/5.0")


def test_a_second_post_updates_the_same_lead(
    capture: LeadCapture, repository: MemoryRepository, clock: FixedClock
) -> None:
    first = capture.capture(submission(company="旧社名"), REQUEST)
    clock.advance(timedelta(days=1))

    second = capture.capture(submission(email=EMAIL.upper(), company="新社名"), REQUEST)

    assert (second.lead_id, second.created) == (first.lead_id, False)
    assert list(repository.leads) == [first.lead_id]
    assert repository.leads[first.lead_id].company == "新社名"
    assert len(repository.timeline(first.lead_id)) == 2
    assert len(repository.consents(first.lead_id)) == 2


def test_losing_the_race_for_a_new_address_re_reads_and_merges_into_the_winner(
    capture: LeadCapture, repository: MemoryRepository, clock: FixedClock
) -> None:
    winner = first_post(company="勝者株式会社", interests=["AI"])

    def another_post_wins(_: Lead) -> None:
        repository.claims[email_key(winner.email)] = winner.lead_id
        repository.leads[winner.lead_id] = winner

    repository.before_create = another_post_wins

    result = capture.capture(submission(job_title="部長", interests=["IoT"]), REQUEST)

    assert (result.lead_id, result.created) == (winner.lead_id, False)
    assert list(repository.leads) == [winner.lead_id]
    stored = repository.leads[winner.lead_id]
    assert (stored.company, stored.job_title, stored.interests) == (
        "勝者株式会社",
        "部長",
        ("AI", "IoT"),
    )
    assert stored.version == winner.version + 1
    assert repository.reads == 2
    [activity] = repository.timeline(winner.lead_id)
    assert activity.details["created"] is False


def test_a_concurrent_update_is_re_read_and_merged_not_overwritten(
    capture: LeadCapture, repository: MemoryRepository
) -> None:
    lead_id = capture.capture(submission(interests=["AI"]), REQUEST).lead_id

    def someone_else_updates(_: Lead) -> None:
        stored = repository.leads[lead_id]
        repository.leads[lead_id] = stored.model_copy(
            update={
                "interests": (*stored.interests, "クラウド"),
                "department": "情報システム部",
                "version": stored.version + 1,
            }
        )

    repository.before_replace = someone_else_updates

    result = capture.capture(submission(interests=["IoT"], job_title="部長"), REQUEST)

    stored = repository.leads[result.lead_id]
    assert (stored.department, stored.job_title) == ("情報システム部", "部長")
    assert stored.interests == ("AI", "クラウド", "IoT")
    assert stored.version == 3
    assert len(repository.timeline(lead_id)) == 2  # one per successful post, none duplicated


def test_capture_gives_up_with_a_conflict_after_too_many_lost_races(clock: FixedClock) -> None:
    repository = AlwaysConflicting()
    capture = LeadCapture(repository, load_programs(), clock, WORDING)

    with pytest.raises(CaptureConflict):
        capture.capture(submission(), REQUEST)

    assert repository.writes == MAX_REVISIONS
    assert repository.records == []


# -- enrolment -----------------------------------------------------------------------------


def test_a_mailable_new_lead_is_enrolled_in_welcome_due_now(
    capture: LeadCapture, repository: MemoryRepository, clock: FixedClock
) -> None:
    result = capture.capture(submission(consent="on", form_type="download"), REQUEST)

    assert result.enrolled_in == "welcome"
    assert repository.leads[result.lead_id].enrolment == Enrolment(
        program_id="welcome", step_id="welcome", enrolled_at=clock.now(), due_at=clock.now()
    )
    assert activity_types(repository, result.lead_id) == [
        ActivityType.ENROLLED,
        ActivityType.FORM_SUBMITTED,
    ]
    enrolled = next(
        a for a in repository.timeline(result.lead_id) if a.type is ActivityType.ENROLLED
    )
    assert enrolled.details == {"program_id": "welcome"}


def test_a_lead_without_consent_is_not_enrolled(
    capture: LeadCapture, repository: MemoryRepository
) -> None:
    result = capture.capture(submission(form_type="inquiry"), REQUEST)

    assert result.enrolled_in is None
    assert repository.leads[result.lead_id].enrolment is None
    assert activity_types(repository, result.lead_id) == [ActivityType.FORM_SUBMITTED]


def test_a_lead_is_enrolled_when_a_later_post_brings_consent(
    capture: LeadCapture, repository: MemoryRepository
) -> None:
    capture.capture(submission(form_type="inquiry"), REQUEST)

    result = capture.capture(submission(form_type="newsletter", consent="on"), REQUEST)

    assert (result.created, result.enrolled_in) == (False, "welcome")


def test_an_enrolled_lead_is_not_enrolled_again(
    capture: LeadCapture, repository: MemoryRepository, clock: FixedClock
) -> None:
    first = capture.capture(submission(consent="on"), REQUEST)
    enrolment = repository.leads[first.lead_id].enrolment
    clock.advance(timedelta(days=3))

    again = capture.capture(submission(consent="on", form_type="trial"), REQUEST)

    assert again.enrolled_in is None
    assert repository.leads[first.lead_id].enrolment == enrolment
    assert activity_types(repository, first.lead_id).count(ActivityType.ENROLLED) == 1


@pytest.mark.parametrize(
    ("stage", "program"),
    [
        (Stage.LEAD, "welcome"),
        (Stage.CUSTOMER, "customer"),
        # a dormant lead that posts a form is back: a lead again, so welcome
        (Stage.DORMANT, "welcome"),
        (Stage.SQL, None),
    ],
)
def test_a_lead_is_enrolled_in_the_default_program_of_its_segment(
    capture: LeadCapture, repository: MemoryRepository, stage: Stage, program: str | None
) -> None:
    lead = first_post().model_copy(update={"stage": stage})
    repository.claims[email_key(lead.email)] = lead.lead_id
    repository.leads[lead.lead_id] = lead

    result = capture.capture(submission(consent="on"), REQUEST)

    assert result.enrolled_in == program


@pytest.mark.parametrize(
    ("flag", "consent", "program"),
    [
        ("unsubscribed", "", None),
        ("unsubscribed", "on", "welcome"),  # a fresh opt-in re-subscribes
        ("suppressed", "", None),
        ("suppressed", "on", None),  # bounces and complaints stay suppressed
    ],
)
def test_an_opted_out_lead_is_enrolled_only_when_it_may_be_mailed_again(
    capture: LeadCapture, repository: MemoryRepository, flag: str, consent: str, program: str | None
) -> None:
    lead = first_post(consent="on").model_copy(update={flag: True})
    repository.claims[email_key(lead.email)] = lead.lead_id
    repository.leads[lead.lead_id] = lead

    assert capture.capture(submission(consent=consent), REQUEST).enrolled_in == program
