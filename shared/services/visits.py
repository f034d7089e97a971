"""Website page views from the first-party tracking snippet, and who the visitor is.

A visitor is anonymous (a random id the site keeps in its own storage) until its browser
posts a lead form carrying that id, or exchanges the signed lead reference of a nurture
email's link. Until then a page view is one item under the visitor (``VISIT#<view id>``,
kept for the attribution window); from then on the visitor's recent views, and every
later one, are the lead's: each is scored once through ``LeadRepository.revise``
(keyed by its view id), written on the timeline as ``page_viewed`` and adds its page
group to the lead. A lead already with sales who comes back to a high-intent page is
reported to sales (``revisit``), at most once per period.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from shared.domain.clock import Clock, to_iso
from shared.domain.leads import Activity, ActivityType, Lead, Stage
from shared.domain.scoring import PageRules, Signal
from shared.ports import LeadRepository, Marker, Revised, Revision, Snapshot
from shared.services.handoff import SalesMessage, per_protocol

if TYPE_CHECKING:
    # Types only: shared.adapters.visits imports this module (PageView), and a
    # function that never scores (the hand-off) need not import qualification with it.
    from shared.services.qualification import Award, ScoreKeeper

# The stages of a lead that sales are working on: a revisit there is news for them.
WITH_SALES = frozenset({Stage.MQL, Stage.SQL})


@dataclass(frozen=True)
class PageView:
    """One page view as the snippet reports it (the URL without query or fragment)."""

    visitor_id: str
    view_id: str  # random per page load: repeated beacons of one view share it
    url: str
    path: str
    title: str
    seconds: int  # time on page (visible)
    at: datetime  # when the API first received it
    referrer: str | None = None

    def as_item(self) -> dict[str, Any]:
        item = {
            "visitor_id": self.visitor_id,
            "view_id": self.view_id,
            "url": self.url,
            "path": self.path,
            "title": self.title,
            "seconds": self.seconds,
            "at": to_iso(self.at),
        }
        if self.referrer:
            item["referrer"] = self.referrer
        return item


class VisitStore(Protocol):
    def linked_lead(self, visitor_id: str, *, consistent: bool = False) -> str | None:
        """The lead the visitor is known to be, if any (``consistent``: as last written)."""
        ...

    def put_view(self, view: PageView, expires_at: datetime) -> bool:
        """Store a view unless one with its id exists; False when it did (a repeat)."""
        ...

    def view(self, visitor_id: str, view_id: str) -> PageView | None:
        """A stored view (the first beacon's time, for a repeat)."""
        ...

    def views_since(self, visitor_id: str, since: datetime) -> list[PageView]:
        """The visitor's views at or after ``since`` (one Query of its partition)."""
        ...

    def link(self, visitor_id: str, lead_id: str, at: datetime, via: str) -> None:
        """Remember that the visitor is the lead (``form`` or ``email``)."""
        ...

    def claim_alert(
        self, lead_id: str, at: datetime, period: timedelta
    ) -> tuple[bool, datetime | None]:
        """Take the lead's revisit alert for ``at`` unless one was taken within ``period``
        before (a conditional write): (taken, the previous claim's time if any)."""
        ...

    def release_alert(self, lead_id: str, at: datetime, previous: datetime | None) -> None:
        """Give back a claim whose message was not published."""
        ...


class AlertPublisher(Protocol):
    def publish(self, message: SalesMessage) -> str: ...


@dataclass(frozen=True)
class Identified:
    """What linking a visitor to a lead did."""

    views: int  # views attributed (each once, however often this runs)
    qualified: bool = False  # one of them made the lead an MQL


class VisitTracker:
    def __init__(
        self,
        store: VisitStore,
        leads: LeadRepository,
        scores: ScoreKeeper,
        clock: Clock,
        *,
        attribution: timedelta,
        alert_period: timedelta = timedelta(hours=24),
        publisher: AlertPublisher | None = None,
    ) -> None:
        self._store = store
        self._leads = leads
        self._scores = scores
        self._clock = clock
        self._attribution = attribution
        self._alert_period = alert_period
        self._publisher = publisher

    @property
    def pages(self) -> PageRules:
        return self._scores.rules.pages

    def record(self, view: PageView) -> str:
        """Store a page view, and score it if the visitor is a known lead.

        Returns ``ignored`` (a page the rules do not track), ``anonymous`` (stored for
        later attribution: two reads and one write), ``repeat`` (an anonymous repeat),
        ``attributed``, or ``qualified`` (attributed, and it made the lead an MQL). A retry
        of a failed call re-does only what is missing.
        """
        if self.pages.ignored(view.path):
            return "ignored"
        lead_id = self._store.linked_lead(view.visitor_id)
        expires = view.at + self._attribution
        if not self._store.put_view(view, expires):
            if lead_id is None:
                # a retry of a view stored before it read the link again: read it now
                lead_id = self._store.linked_lead(view.visitor_id, consistent=True)
            if lead_id is None:
                return "repeat"
            # A repeat of a known visitor's view: finish it as first recorded.
            view = self._store.view(view.visitor_id, view.view_id) or view
        if lead_id is None:
            # A form post may have linked the visitor while this view was being stored.
            # ``identify`` links, then reads the views; this stores, then reads the link
            # again: one of the two sees the other (the view's marker scores it once).
            lead_id = self._store.linked_lead(view.visitor_id, consistent=True)
            if lead_id is None:
                return "anonymous"
        group, revised = self._attribute(lead_id, view)
        if revised.before is None:
            return "anonymous"  # erased: nothing to attribute to
        self._revisit(revised.before, view, group)
        return "qualified" if revised.qualified else "attributed"

    def identify(self, visitor_id: str, lead_id: str, via: str) -> Identified:
        """The visitor is this lead: link them and attribute its views of the window."""
        now = self._clock.now()
        self._store.link(visitor_id, lead_id, now, via)
        views = self._store.views_since(visitor_id, now - self._attribution)
        views = [v for v in views if not self.pages.ignored(v.path)]
        qualified = False
        for view in sorted(views, key=lambda v: v.at):
            qualified = self._attribute(lead_id, view)[1].qualified or qualified
        return Identified(len(views), qualified)

    def _attribute(self, lead_id: str, view: PageView) -> tuple[str | None, Revised]:
        """Score the view once (its marker is written with the score and the activity)
        and qualify the lead if it earned points; the view's group and what the write did
        (``before`` None: no such lead)."""
        rules = self.pages
        group = rules.group_of(view.path)
        scored = (group,) if group and view.seconds >= rules.min_seconds else ()

        def change(snapshot: Snapshot) -> Revision | None:
            lead = snapshot.lead
            if lead is None:
                return None
            now = self._clock.now()
            taken = self._scores.take(
                lead,
                Signal.PAGE_VIEW,
                view.at,
                now,
                link_tags=scored,
                page_groups=(group,) if group else (),
                reason=f"page:{group}" if group else "page",
            )
            after = taken.lead
            if after != lead:
                after = after.model_copy(update={"updated_at": now})
            activity = page_activity(lead_id, view, group, taken.award)
            return Revision(after, [activity, *taken.records])

        revised = self._leads.revise(
            lead_id, change, marker=Marker(f"view:{view.view_id}", view.at)
        )
        return group, revised

    def _revisit(self, lead: Lead, view: PageView, group: str | None) -> bool:
        """Tell sales once per period that a lead they work on is back on a page of
        high intent; True if this view is such a revisit (published or not)."""
        if (
            self._publisher is None
            or not self.pages.high_intent(group)
            or lead.stage not in WITH_SALES
            # Qualified by this very view (or after it): that is the hand-off, not a revisit.
            or lead.qualified_at is None
            or lead.qualified_at >= view.at
        ):
            return False
        taken, previous = self._store.claim_alert(lead.lead_id, view.at, self._alert_period)
        if not taken:
            return True
        try:
            self._publisher.publish(revisit_message(lead, view, group or ""))
        except Exception:
            # Not published: give the claim back so the browser's retry can publish.
            self._store.release_alert(lead.lead_id, view.at, previous)
            raise
        return True


def page_activity(lead_id: str, view: PageView, group: str | None, award: Award) -> Activity:
    details: dict[str, Any] = {
        "title": view.title,
        "url": view.url,
        "seconds": view.seconds,
        "page_group": group,
        "referrer": view.referrer,
        "view_id": view.view_id,
    }
    if award.rules:
        details.update(award.as_details())
    return Activity(
        activity_id=view.view_id,
        lead_id=lead_id,
        type=ActivityType.PAGE_VIEWED,
        at=view.at,
        details={k: v for k, v in details.items() if v is not None},
    )


def revisit_message(lead: Lead, view: PageView, group: str) -> SalesMessage:
    """The sales topic's message: a lead sales work on is reading a high-intent page."""
    document = {
        "type": "lead.revisit",
        "lead_id": lead.lead_id,
        "stage": lead.stage.value,
        "page_group": group,
        "title": view.title,
        "url": view.url,
        "at": to_iso(view.at),
        "company": lead.company,
        "name": lead.name,
    }
    text = "\n".join(
        [
            "営業対応中のリードが、再びサイトの重要ページを閲覧しています。",
            "A lead sales are working on is back on a high-intent page.",
            "",
            f"会社名 / Company: {lead.company or '-'}",
            f"氏名 / Name: {lead.name or '-'}",
            f"ステージ / Stage: {lead.stage.value}",
            f"ページ / Page: {view.title} ({group})",
            f"URL: {view.url}",
            f"日時 / At: {to_iso(view.at)}",
            "",
            f"lead_id: {lead.lead_id}",
        ]
    )
    message = per_protocol(document, text)
    company = " ".join((lead.company or lead.email).split())[:60]
    return SalesMessage(
        subject=f"[再訪] {company} - {group}"[:100],
        message=message,
        attributes={
            "event": {"DataType": "String", "StringValue": "revisit"},
            "page_group": {"DataType": "String", "StringValue": group or "-"},
            "stage": {"DataType": "String", "StringValue": lead.stage.value},
        },
        handoff_id=f"revisit:{lead.lead_id}:{to_iso(view.at)}",
    )
