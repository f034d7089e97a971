"""``lead-nurture backtest`` against moto: outcomes listed when sales record them, each
timeline read with Query, today's rules and a candidate side by side, and points fitted
to the history for review."""

from __future__ import annotations

import shutil
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.cli import main
from shared.adapters.codecs import outcome_pk
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.backtest import behaviours, load_histories, run
from shared.domain.clock import FixedClock
from shared.domain.leads import Activity, ActivityType, Stage
from shared.domain.programs import CONTENT_DIR, load_programs
from shared.domain.scoring import load_scoring
from shared.ports import Revision
from shared.services.lifecycle import DispositionRequest, LifecycleSettings, SalesFeedback
from tests.email_events import raw, ses_record
from tests.integration.conftest import TABLE
from tests.integration.scoring_world import GRADE_A, engagement, recorder, store_lead, stored

T0 = datetime(2026, 9, 1, 1, 0, tzinfo=UTC)
DAY = timedelta(days=1)
MINUTE = timedelta(minutes=1)


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "LEAD_NURTURE_CONTENT", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def calls(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The CLI's DynamoDB calls, by operation (it gets the test's client)."""
    seen: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        seen[model.name] += 1

    dynamodb.meta.events.register("before-call.dynamodb.*", count)
    monkeypatch.setattr(sys.modules["infra.cli.main"], "dynamodb", lambda args: dynamodb)
    return seen


def feedback(repository: DynamoLeadRepository, clock: FixedClock) -> SalesFeedback:
    return SalesFeedback(repository, load_programs(), clock, LifecycleSettings())


def timeline(
    repository: DynamoLeadRepository,
    lead_id: str,
    *acts: tuple[ActivityType, datetime, dict[str, Any]],
) -> None:
    records = [
        Activity(lead_id=lead_id, type=kind, at=at, details=details) for kind, at, details in acts
    ]
    repository.revise(
        lead_id, lambda snapshot: Revision(snapshot.lead, records) if snapshot.lead else None
    )


def clicks(at: datetime, tag: str, n: int) -> list[tuple[ActivityType, datetime, dict[str, Any]]]:
    return [
        (ActivityType.EMAIL_CLICKED, at + i * DAY, {"link_tags": [tag], "verdict": "human"})
        for i in range(n)
    ]


def seed(repository: DynamoLeadRepository, clock: FixedClock) -> dict[str, str]:
    """Four leads handed to sales and their outcomes, recorded as sales record them."""
    clock.set(T0)
    ids = {}
    for name, stage in (("reader", Stage.MQL), ("buyer", Stage.SQL), ("loser", Stage.MQL)):
        ids[name] = store_lead(repository, clock, program=None, stage=stage, **GRADE_A).lead_id
    # The reader clicked case studies every day; the buyer read pricing twice.
    timeline(repository, ids["reader"], *clicks(T0, "case_study", 8))
    timeline(
        repository, ids["buyer"], *clicks(T0, "pricing", 2), *clicks(T0 + DAY / 2, "case_study", 2)
    )
    timeline(repository, ids["loser"], *clicks(T0, "case_study", 9))
    sales = feedback(repository, clock)
    clock.set(T0 + 20 * DAY)
    sales.report(ids["reader"], DispositionRequest(disposition="rejected", reason="学生"))
    clock.set(T0 + 30 * DAY)
    sales.report(ids["buyer"], DispositionRequest(disposition="won"))
    clock.set(T0 + 40 * DAY)
    sales.report(ids["loser"], DispositionRequest(disposition="lost"))
    return ids


def test_sales_outcomes_are_listed_by_month_with_the_disposition(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock
) -> None:
    ids = seed(repository, clock)
    # Accepting is no outcome: it lists nothing
    accepted = store_lead(repository, clock, program=None, stage=Stage.MQL, **GRADE_A)
    feedback(repository, clock).report(accepted.lead_id, DispositionRequest(disposition="accepted"))

    listed = repository.outcomes(T0.date(), (T0 + 60 * DAY).date())
    assert [(o.lead_id, o.disposition) for o in listed] == [
        (ids["reader"], "rejected"),
        (ids["buyer"], "won"),
        (ids["loser"], "lost"),
    ]
    # under one partition a month
    september = dynamodb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": outcome_pk(T0.date())}},
    )["Items"]
    assert [item["lead_id"]["S"] for item in september] == [ids["reader"]]
    # and a period reads only its days
    assert [
        o.lead_id for o in repository.outcomes((T0 + 25 * DAY).date(), (T0 + 35 * DAY).date())
    ] == [ids["buyer"]]


def test_the_backtest_prints_today_and_a_candidate_side_by_side_without_a_scan(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    clock: FixedClock,
    calls: Counter[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    ids = seed(repository, clock)
    # A candidate that gives case studies nothing and pricing a lot
    document = load_scoring().model_dump(mode="json")
    document["link_tags"]["case_study"] = {"points": 0}
    document["behaviour"]["click"] = {"points": 1, "daily_cap": 3}
    document["link_tags"]["pricing"] = {"points": 30, "daily_cap": 30}
    candidate = tmp_path / "candidate.yaml"
    candidate.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    calls.clear()

    status = main(
        [
            "backtest",
            "--table",
            TABLE,
            "--rules",
            str(candidate),
            "--from",
            "2026-09-01",
            "--to",
            "2026-10-31",
        ]
    )
    out, _ = capsys.readouterr()

    assert status == 0
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert "Backtest 2026-09-01 .. 2026-10-31: 3 leads" in lines
    assert "with a known outcome (1 won, 1 lost, 1 rejected)" in lines
    # Today's rules hand over the two keen readers (7 points a click) and not the buyer;
    # the candidate hands over the buyer alone
    assert "MQL 2 1" in lines
    assert "precision (won of MQL) 0.0% 100.0%" in lines
    assert "recall (MQL of won) 0.0% 100.0%" in lines
    assert "median days MQL → won - 29.0" in lines
    assert "2026-09 2 1" in lines
    assert "Leads that would change state (today → candidate): 3" in lines
    assert f"{ids['buyer']} - MQL won" in lines
    assert f"{ids['reader']} MQL - not won" in lines
    # Read with Query only: two months of outcomes, then each lead and its timeline
    assert "Scan" not in calls
    assert calls["Query"] == 2 + 3
    assert calls["GetItem"] == 3


def test_suggest_writes_a_candidate_for_review_that_validates(
    repository: DynamoLeadRepository,
    clock: FixedClock,
    calls: Counter[str],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    seed(repository, clock)
    # more history: eight more buyers who read pricing, eight keen readers who did not buy
    sales = feedback(repository, clock)
    for n in range(16):
        clock.set(T0 + n * DAY)
        lead = store_lead(repository, clock, program=None, stage=Stage.MQL, **GRADE_A)
        buyer = n % 2 == 0
        acts = (
            clicks(T0 + n * DAY, "pricing", 1 + n % 3)
            if buyer
            else clicks(T0 + n * DAY, "case_study", 4 + n % 4)
        )
        timeline(repository, lead.lead_id, *acts)
        clock.set(T0 + (n + 30) * DAY)
        sales.report(lead.lead_id, DispositionRequest(disposition="won" if buyer else "lost"))
    out_file = tmp_path / "suggested.yaml"

    status = main(["backtest", "--table", TABLE, "--suggest", "--out", str(out_file)])
    out, _ = capsys.readouterr()

    assert status == 0
    text = out_file.read_text(encoding="utf-8")
    assert text.startswith("# Suggested by `lead-nurture backtest --suggest`")
    suggested = load_scoring(out_file)
    assert suggested.link_tags["pricing"].points > suggested.link_tags["case_study"].points
    assert load_scoring() != suggested  # nothing applied: the shipped rules are untouched
    lines = [" ".join(line.split()) for line in out.splitlines()]
    assert any(line.startswith("precision (won of MQL)") for line in lines)
    assert f"Written to {out_file}" in lines
    # and `validate` accepts the file as scoring rules
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    shutil.copy(out_file, content / "scoring.yaml")
    assert main(["validate", "--content", str(content)]) == 0


def test_suggest_without_out_and_a_broken_candidate_are_clear_errors(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, dynamodb: Any
) -> None:
    assert main(["backtest", "--table", TABLE, "--suggest"]) == 2
    assert "--suggest needs --out FILE" in capsys.readouterr().err
    broken = tmp_path / "broken.yaml"
    broken.write_text("half_life_days: -1\n", encoding="utf-8")
    assert main(["backtest", "--table", TABLE, "--rules", str(broken)]) == 2
    assert "scoring rules: broken.yaml" in capsys.readouterr().err


def test_the_replay_of_todays_rules_agrees_with_what_production_did(
    dynamodb: Any, repository: DynamoLeadRepository, clock: FixedClock, lambda_context: Any
) -> None:
    # Given a grade A lead that production made an MQL by its clicks, through the
    # engagement function, and that sales then won
    lead = store_lead(repository, clock, **GRADE_A)
    deliver = engagement(recorder(dynamodb, clock), lambda_context)
    click_times = [clock.now() + i * timedelta(hours=5) for i in range(16)]
    for at in click_times:
        clock.set(at + MINUTE)
        body = raw(
            ses_record(
                "click",
                lead_id=lead.lead_id,
                email=lead.email,
                at=at,
                link_tags=["pricing"],
                link=f"https://www.example.co.jp/p/{at.hour}",
            )
        )
        assert deliver([body]).failed == []
    qualified = stored(repository, lead.lead_id)
    assert qualified.stage is Stage.MQL
    (activity,) = [a for a in repository.history(lead.lead_id) if a.type is ActivityType.QUALIFIED]
    clock.set(clock.now() + 10 * DAY)
    feedback(repository, clock).report(lead.lead_id, DispositionRequest(disposition="won"))

    # When its history is replayed through today's rules
    histories = load_histories(repository, repository, click_times[0].date(), clock.now().date())
    (result,) = run("today", histories, load_scoring()).replays

    # Then it qualifies on the very click that qualified it in production
    last_click = max(t for t in click_times if t <= activity.at)
    assert result.mql_at == last_click
    assert result.won
    assert behaviours(repository.history(lead.lead_id))[0].at == click_times[0]


def test_the_progress_bar_fills_as_timelines_are_read() -> None:
    from infra.cli.main import Progress

    bar = Progress("timelines", bar=True)
    assert bar.line(0, 3) == "timelines [" + "." * 30 + "] 0/3"
    assert bar.line(1, 3) == "timelines [" + "#" * 10 + "." * 20 + "] 1/3"
    assert bar.line(3, 3) == "timelines [" + "#" * 30 + "] 3/3"
    assert Progress("days").line(2, 5) == "days 2/5"
