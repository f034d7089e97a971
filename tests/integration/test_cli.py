"""The operator CLI against moto, in process: lead list imports, content checks,
previews, a lead's export, the funnel report and plan, and the local stack's clock."""

from __future__ import annotations

import codecs
import csv
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from functions.admin.handler import build as build_admin
from functions.admin.handler import lambda_handler as admin_handler
from infra.cli import main
from shared.adapters.guard import DynamoSendingSwitch
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.clock import FixedClock, SystemClock
from shared.domain.experiments import Arm, probability_b_beats_a, sample_needed
from shared.domain.funnel import business_day
from shared.domain.programs import CONTENT_DIR
from tests.builders import DynamoCounters, overwrite
from tests.events import form_post
from tests.integration.conftest import TABLE, all_items
from tests.integration.test_admin_api import admin_event

HEADERS = "会社名,氏名,メールアドレス,電話番号,部署名,役職,業種,従業員数,都道府県,興味,備考,FAX"
ROWS = [
    # row 2
    "株式会社テスト商事,山田 太郎,taro.yamada@example.co.jp,03-1234-5678,営業部,部長,"
    '製造業,100-299名,東京,"DX,営業支援",展示会で名刺交換,03-0000-0000',
    # row 3
    "株式会社サンプル,佐藤 花子,hanako.sato@example.jp,090-1111-2222,,課長,IT,,大阪,,,",
    # row 4: blank
    ",,,,,,,,,,,",
    # row 5: not an address
    "株式会社ダミー,鈴木 一郎,not-an-email,,,,,,,,,",
    # row 6: the same person as row 2 (the address differs only in case), one more interest
    ",,Taro.Yamada@EXAMPLE.CO.JP,,,,,,,クラウド,,",
    # row 7: markup
    "<b>株式会社</b>,田中 次郎,jiro.tanaka@example.jp,,,,,,,,,",
]
CONSENT = "exhibition-2026-v1"


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "LEAD_NURTURE_CONTENT", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    # No cdk.json here: the deployment defaults apply.
    monkeypatch.chdir(tmp_path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def write_csv(path: Path, encoding: str) -> Path:
    path.write_bytes("\r\n".join([HEADERS, *ROWS]).encode(encoding) + b"\r\n")
    return path


def lead_items(client: Any) -> list[dict[str, Any]]:
    return [i for i in all_items(client) if i["sk"]["S"] == "PROFILE"]


def timeline_items(client: Any) -> list[dict[str, Any]]:
    return [i for i in all_items(client) if i["sk"]["S"].startswith(("ACT#", "CONSENT#"))]


def import_args(path: Path, *extra: str) -> list[str]:
    return ["import", str(path), "--table", TABLE, *extra]


# -- import ------------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "cp932"])
def test_a_japanese_csv_imports_with_the_web_forms_validation_and_dedupe(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path, encoding: str
) -> None:
    path = write_csv(tmp_path / "seminar.csv", encoding)

    status, out, _ = run(
        capsys, *import_args(path, "--source", "seminar-2026-11", "--consent-source", CONSENT)
    )

    assert status == 1  # some rows were rejected
    assert _count(out, "created") == 2
    assert _count(out, "merged (updated)") == 1
    assert _count(out, "rejected") == 2
    assert _count(out, "blank rows skipped") == 1
    assert "row 5: メールアドレス (email): メールアドレスの形式が正しくありません。" in out
    assert "row 7: 会社名 (company): HTMLタグは入力できません。" in out
    fax = next(line for line in out.splitlines() if line.strip().startswith("FAX"))
    assert fax.endswith("→ 無視: リードに持たない列 / ignored: not kept on a lead")
    assert len(lead_items(dynamodb)) == 2
    lead = repository.find_by_email("taro.yamada@example.co.jp")
    assert lead is not None
    assert (lead.company, lead.name) == ("株式会社テスト商事", "山田 太郎")
    assert lead.department == "営業部"
    assert (lead.prefecture, lead.phone_normalized) == ("東京都", "+81312345678")
    assert lead.interests == ("DX", "営業支援", "クラウド")
    assert lead.first_touch.source == "seminar-2026-11"
    assert lead.first_touch.form_type == "seminar_registration"
    assert lead.consent.opted_in
    assert lead.consent.wording_version == CONSENT
    consents = repository.consents(lead.lead_id)
    assert consents
    assert all(c.given and c.wording_version == CONSENT for c in consents)
    assert consents[0].form_id == "import:seminar.csv"


def _count(out: str, label: str) -> int:
    line = next(li for li in out.splitlines() if li.strip().startswith(label))
    return int(line.split()[-1])


def test_a_second_import_of_the_same_file_changes_nothing(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "seminar.csv", "utf-8-sig")
    args = import_args(path, "--source", "seminar-2026-11", "--consent-source", CONSENT)
    run(capsys, *args)
    leads, records = lead_items(dynamodb), timeline_items(dynamodb)

    _, out, _ = run(capsys, *args)

    assert (_count(out, "created"), _count(out, "merged (updated)")) == (0, 0)
    assert _count(out, "unchanged (already imported)") == 3
    assert _count(out, "rejected") == 2
    assert lead_items(dynamodb) == leads
    assert len(timeline_items(dynamodb)) == len(records)


def test_a_dry_run_reports_what_would_happen_and_writes_nothing(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "seminar.csv", "cp932")

    status, out, _ = run(capsys, *import_args(path, "--dry-run"))

    assert status == 1
    assert out.startswith("Dry run: import of seminar.csv (cp932, 6 rows)")
    assert _count(out, "would be created") == 2
    assert _count(out, "would be merged (updated)") == 1
    assert _count(out, "rejected") == 2
    assert all_items(dynamodb) == []


def test_an_xlsx_list_of_business_cards_imports_with_english_headers_and_mappings(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["Company", "Last Name", "First Name", "Mail Addr", "TEL", "Job Title", "Memo"])
    sheet.append(["Example KK", "Sato", "Ken", "ken.sato@example.com", 312345678, "CTO", "会場A"])
    sheet.append([None, None, None, None, None, None, None])
    sheet.append(["Broken", "X", "Y", "broken@", None, None, None])
    sheet.append(["Example KK", None, None, "KEN.SATO@example.com", None, "CTO & CIO", None])
    workbook.save(tmp_path / "cards.xlsx")

    status, out, _ = run(
        capsys,
        *import_args(
            tmp_path / "cards.xlsx",
            "--form-type",
            "contact",
            "--source",
            "exhibition-2026-tokyo",
            "--map",
            "Mail Addr=email",
        ),
    )

    assert status == 1
    assert (_count(out, "created"), _count(out, "merged (updated)")) == (1, 1)
    assert _count(out, "blank rows skipped") == 1
    assert "row 4: メールアドレス (email):" in out
    lead = repository.find_by_email("ken.sato@example.com")
    assert lead is not None
    assert (lead.family_name, lead.given_name, lead.name) == ("Sato", "Ken", "Sato Ken")
    assert (lead.phone, lead.job_title, lead.message) == ("0312345678", "CTO & CIO", "会場A")
    assert lead.first_touch.source == "exhibition-2026-tokyo"
    # No --consent-source: the list gives no consent, so nothing is mailed.
    assert not lead.consent.opted_in
    assert lead.enrolment is None


def test_a_list_never_opts_an_unsubscribed_lead_back_in(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "seminar.csv", "utf-8")
    run(capsys, *import_args(path, "--consent-source", CONSENT))
    lead = repository.find_by_email("hanako.sato@example.jp")
    assert lead is not None
    overwrite(repository, lead.model_copy(update={"unsubscribed": True}))

    _, out, _ = run(capsys, *import_args(path, "--source", "later", "--consent-source", CONSENT))

    assert "row(s) for unsubscribed leads: consent not renewed" in out
    again = repository.find_by_email("hanako.sato@example.jp")
    assert again is not None
    assert again.unsubscribed


def test_forms_that_need_consent_reject_rows_without_it(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "seminar.csv", "utf-8")

    status, out, _ = run(capsys, *import_args(path, "--form-type", "download"))

    assert status == 1
    assert _count(out, "rejected") == 5
    assert "メール配信への同意が必要です。" in out
    assert lead_items(dynamodb) == []


def test_unreadable_files_and_bad_mappings_are_errors_not_tracebacks(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    no_email = tmp_path / "no_email.csv"
    no_email.write_text("会社名,氏名\nA,B\n", encoding="utf-8")

    assert run(capsys, *import_args(no_email))[2].startswith("lead-nurture: error: no email")
    status, _, err = run(capsys, *import_args(no_email, "--map", "会社名=salary"))
    assert status == 2
    assert "unknown field 'salary'" in err
    assert run(capsys, *import_args(tmp_path / "missing.csv"))[0] == 2
    (tmp_path / "list.pdf").write_bytes(b"%PDF")
    assert "expected a .csv or .xlsx" in run(capsys, *import_args(tmp_path / "list.pdf"))[2]


# -- content -----------------------------------------------------------------------------


def test_validate_passes_on_the_shipped_content(capsys: Any) -> None:
    status, out, _ = run(capsys, "validate")

    assert status == 0
    assert out.startswith("ok: scoring rules, 7 programs")


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def test_validate_names_a_template_that_fails_to_render(capsys: Any, content_copy: Path) -> None:
    template = content_copy / "email" / "case_study.en.txt"
    text = template.read_text(encoding="utf-8")
    template.write_text(text.replace("Best regards,", "{{ lead.favourite_colour }}"), "utf-8")

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "case_study (en, template case_study): UndefinedError" in err
    assert "favourite_colour" in err


def test_validate_reports_a_broken_program_file(capsys: Any, content_copy: Path) -> None:
    program = content_copy / "programs" / "welcome.yaml"
    program.write_text(program.read_text().replace("goto: seminar_invitation", "goto: nowhere"))

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "error: programs: welcome.yaml:" in err
    assert "nowhere" in err


def test_validate_reports_a_branch_on_a_link_the_email_does_not_have(
    capsys: Any, content_copy: Path
) -> None:
    program = content_copy / "programs" / "welcome.yaml"
    text = program.read_text(encoding="utf-8")
    assert "links: [whitepaper]" in text
    program.write_text(text.replace("links: [whitepaper]", "links: [whitepapr]"), "utf-8")

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "whitepaper.ja.html has no link 'whitepapr'" in err


def test_validate_reports_a_page_group_the_scoring_rules_do_not_define(
    capsys: Any, content_copy: Path
) -> None:
    program = content_copy / "programs" / "welcome.yaml"
    text = program.read_text(encoding="utf-8")
    assert "  form_types: [trial]" in text
    program.write_text(
        text.replace("  form_types: [trial]", "  form_types: [trial]\n      pages: [pricng]", 1),
        "utf-8",
    )

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "welcome names page group pricng, which scoring.yaml's pages do not define" in err


def test_preview_prints_a_step_for_a_sample_lead_or_writes_files(
    capsys: Any, tmp_path: Path
) -> None:
    status, out, _ = run(capsys, "preview", "--program", "welcome", "--step", "welcome")
    assert status == 0
    assert out.startswith("Subject: ")
    assert "株式会社サンプル商事 山田 太郎 様" in out

    status, out, _ = run(
        capsys,
        *["preview", "--program", "welcome", "--step", "welcome", "--locale", "en"],
        *["--out", str(tmp_path / "preview")],
    )
    assert status == 0
    html = tmp_path / "preview" / "welcome.en.html"
    assert out.split() == [str(html), str(tmp_path / "preview" / "welcome.en.txt")]
    assert "Dear 太郎 山田," in html.read_text(encoding="utf-8")

    status, _, err = run(capsys, "preview", "--program", "welcome", "--step", "nope")
    assert status == 2
    assert "has no step 'nope'" in err


def test_preview_names_the_deployments_product_and_the_sample_leads_download(
    capsys: Any, tmp_path: Path
) -> None:
    context = {"lead-nurture": {"sender": {"product_name": "Tsumiki"}}}
    (tmp_path / "cdk.json").write_text(json.dumps({"context": context}), encoding="utf-8")

    status, out, _ = run(capsys, "preview", "--program", "welcome", "--step", "welcome")

    assert status == 0
    body = out.split("\n\n", 1)[1]  # the subjects are program YAML, not the deployment's
    assert "3分でわかるTsumiki" in body
    assert "Flowlane" not in body
    assert "『DX推進ホワイトペーパー 2026』をダウンロードいただき" in body


def test_validate_reports_a_broken_assets_file(capsys: Any, content_copy: Path) -> None:
    assets = content_copy / "assets.yaml"
    assets.write_text("dx-whitepaper-2026:\n  ja: DX推進ホワイトペーパー\n", encoding="utf-8")

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "error: assets: assets.yaml:" in err
    assert "en" in err


def test_validate_reports_a_broken_import_column_dictionary(
    capsys: Any, content_copy: Path
) -> None:
    columns = content_copy / "import_columns.yaml"
    columns.write_text("fields:\n  phone: [TEL]\n  mobile: [tel]\n", encoding="utf-8")

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "error: import columns: import_columns.yaml:" in err
    assert "TEL (phone) and tel (mobile)" in err


def test_validate_reports_a_broken_machine_engagement_file(capsys: Any, content_copy: Path) -> None:
    rules = content_copy / "engagement.yaml"
    text = rules.read_text(encoding="utf-8").replace("40.107.0.0/16", "40.107.0.0/99")
    rules.write_text(text, encoding="utf-8")

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert "error: engagement: engagement.yaml:" in err
    assert "40.107.0.0/99 is not a CIDR range" in err


def test_validate_reports_a_layout_without_the_hidden_trap_link(
    capsys: Any, content_copy: Path
) -> None:
    for locale in ("ja", "en"):
        layout = content_copy / "email" / f"layout.{locale}.html"
        text = layout.read_text(encoding="utf-8").replace('ses:tags="link:trap;"', "")
        layout.write_text(text, encoding="utf-8")

    status, _, err = run(capsys, "validate", "--content", str(content_copy))

    assert status == 1
    assert 'welcome/welcome (ja, template welcome): no hidden link ses:tags="link:trap;"' in err


def test_preview_renders_for_a_stored_lead(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path
) -> None:
    run(capsys, *import_args(write_csv(tmp_path / "s.csv", "utf-8"), "--consent-source", CONSENT))
    lead = repository.find_by_email("hanako.sato@example.jp")
    assert lead is not None

    status, out, _ = run(
        capsys,
        *["preview", "--program", "welcome", "--step", "case_study", "--table", TABLE],
        *["--lead-id", lead.lead_id],
    )

    assert status == 0
    assert "株式会社サンプル 佐藤 花子 様" in out
    assert run(capsys, "preview", "--program", "welcome", "--step", "welcome", "--table", TABLE,
               "--lead-id", "0" * 32)[0] == 2  # fmt: skip


# -- export ------------------------------------------------------------------------------


def export_args(lead: str, *extra: str) -> list[str]:
    return ["export", lead, "--table", TABLE, *extra]


def posted(post: Any, repository: DynamoLeadRepository, **fields: str) -> str:
    """A lead from the website's download form; its id."""
    assert post(form_post({"form_type": "download", "consent": "on", **fields}))["statusCode"]
    lead = repository.find_by_email(fields["email"])
    assert lead is not None
    return lead.lead_id


def apart_from_the_moment(document: dict[str, Any]) -> dict[str, Any]:
    """The document without what depends on when it was made (the time, the decayed score)."""
    score = {k: v for k, v in document["score"].items() if k != "score"}
    return {**document, "exported_at": None, "score": score}


def test_export_writes_what_the_admin_api_answers_by_id_or_by_address(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    post: Any,
    capsys: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    lambda_context: Any,
) -> None:
    # Given a lead, and another beside it
    taro = posted(post, repository, email="taro.yamada@example.co.jp", name="山田 太郎")
    posted(post, repository, email="hanako.sato@example.jp", name="佐藤 花子")
    capsys.readouterr()  # the capture function's log lines

    # When it is exported by id to standard output
    status, out, _ = run(capsys, *export_args(taro))

    # Then that is the admin API's document (the same use case)
    assert status == 0
    printed = json.loads(out)
    monkeypatch.setenv("TABLE_NAME", TABLE)
    admin = build_admin(FixedClock(SystemClock().now()))
    answer = admin_handler(admin_event("GET", taro, "export"), lambda_context, admin)
    capsys.readouterr()  # the admin function's log line
    assert answer["statusCode"] == 200
    assert apart_from_the_moment(printed) == apart_from_the_moment(json.loads(answer["body"]))
    assert printed["lead_id"] == taro
    assert printed["exported_at"].endswith("+09:00")

    # When it is exported by its address (any case) to a file that was there, readable
    path = tmp_path / "taro.json"
    path.write_text("old")
    path.chmod(0o644)
    status, out, _ = run(capsys, *export_args("Taro.Yamada@EXAMPLE.co.jp", "--out", str(path)))

    # Then the file holds the same, in UTF-8 as written, readable by the operator alone
    assert (status, out.strip()) == (0, str(path))
    raw = path.read_bytes()
    assert "山田 太郎".encode() in raw
    assert apart_from_the_moment(json.loads(raw)) == apart_from_the_moment(printed)
    assert path.stat().st_mode & 0o777 == 0o600
    assert b"hanako" not in raw


def test_export_of_an_unknown_erased_or_malformed_lead_is_an_error(
    dynamodb: Any, repository: DynamoLeadRepository, post: Any, capsys: Any
) -> None:
    lead_id = posted(post, repository, email="taro.yamada@example.co.jp")
    assert repository.erase(lead_id)
    capsys.readouterr()

    for lead, message in [
        ("0" * 32, f"no lead {'0' * 32} in table {TABLE} (unknown, or erased)"),
        (lead_id, f"no lead {lead_id} in table {TABLE} (unknown, or erased)"),
        (
            "taro.yamada@example.co.jp",
            f"no lead with the address taro.yamada@example.co.jp in table {TABLE} "
            "(erased: only a hash of the address is kept)",
        ),
        ("nobody@example.co.jp", f"no lead with the address nobody@example.co.jp in table {TABLE}"),
        ("../etc/passwd", "not a lead id (32 characters of 0-9 and a-f) or an address"),
    ]:
        status, out, err = run(capsys, *export_args(lead))
        assert (status, out) == (2, "")
        assert message in err


# -- report and plan ---------------------------------------------------------------------


@pytest.fixture
def counters(dynamodb: Any) -> None:
    store = DynamoCounters(dynamodb, TABLE)
    for day, created, mql, sql, won in [
        (date(2026, 11, 1), 60, 10, 5, 1),
        (date(2026, 11, 15), 40, 10, 3, 1),
        (date(2026, 12, 1), 1000, 0, 0, 0),  # outside the period
    ]:
        store.count(day, "stage", "new>lead", created)
        store.count(day, "stage", "lead>mql", mql)
        store.count(day, "stage", "mql>sql", sql)
        store.count(day, "stage", "sql>customer", won)
    for metric, by in [
        ("sent", 200),
        ("delivered", 190),
        ("opens", 90),
        ("clicks", 40),
        ("unique_human_opens", 57),
        ("unique_human_clicks", 19),
        ("unique_machine_opens", 38),
        ("unique_machine_clicks", 19),
    ]:
        store.count(date(2026, 11, 2), "email#welcome#welcome#0", metric, by)
    store.count(date(2026, 11, 3), "email#welcome#welcome#0", "bounces", 4)
    store.count(date(2026, 11, 3), "email#welcome#case_study#1", "sent", 10)
    store.count(date(2026, 11, 3), "email#welcome#case_study#1", "complaints", 1)


def test_the_funnel_report_sums_the_days_counters(counters: None, capsys: Any) -> None:
    status, out, _ = run(
        capsys, "report", "funnel", "--table", TABLE, "--from", "2026-11-01", "--to", "2026-11-30"
    )

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    assert "Funnel 2026-11-01 .. 2026-11-30 (30 days)" in lines
    assert "leads 100" in lines
    assert "MQL 20 lead → MQL 20.0%" in lines
    assert "SQL 8 MQL → SQL 40.0%" in lines
    assert "customers 2 SQL → customer 25.0%" in lines
    assert "lead → customer: 2.0%" in lines
    # sent, uncertain, delivered, open, click, CTO, unsubscribe, MQL ≤14d and its rate,
    # machine open and click, bounce, complaint
    assert (
        "welcome welcome 0 200 0 190 30.0% 10.0% 33.3% 0.00% 0 0.00% 20.0% 10.0% 2.00% 0.00%"
        in lines
    )
    assert "welcome case_study 1 10 0 0 - - - - 0 0.00% - - 0.00% 10.00%" in lines


def test_the_funnel_report_shows_re_engagement_and_list_health(dynamodb: Any, capsys: Any) -> None:
    store = DynamoCounters(dynamodb, TABLE)
    for day, name, by in [
        (date(2026, 11, 2), "new>lead", 50),
        (date(2026, 11, 2), "lead>mql", 5),
        (date(2026, 11, 2), "lead>dormant", 6),
        (date(2026, 11, 9), "lead>dormant", 2),
        (date(2026, 11, 9), "dormant>lead", 1),
        (date(2026, 11, 10), "dormant>mql", 1),
        (date(2026, 11, 10), "mql>lead", 2),  # rejected by sales: not a new lead
        (date(2026, 12, 1), "lead>dormant", 100),  # outside the period
    ]:
        store.count(day, "stage", name, by)
    for day, name, by in [
        (date(2026, 11, 3), "unsubscribed", 4),
        (date(2026, 11, 4), "unsubscribed", 1),
        (date(2026, 11, 4), "suppressed:bounce", 3),
        (date(2026, 11, 5), "suppressed:complaint", 1),
        (date(2026, 11, 5), "suppressed:rejected", 2),
        (date(2026, 11, 20), "sunset:dormant", 2),
        (date(2026, 11, 21), "sunset:lost", 1),
        (date(2026, 12, 1), "unsubscribed", 100),  # outside the period
    ]:
        store.count(day, "list", name, by)

    status, out, _ = run(
        capsys, "report", "funnel", "--table", TABLE, "--from", "2026-11-01", "--to", "2026-11-30"
    )

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    # the stages count new leads and every route into MQL, nothing else
    assert "leads 50" in lines
    assert "MQL 6 lead → MQL 12.0%" in lines
    # re-engagement: 8 went dormant, 2 came back (one as an MQL), 2 dormant leads sunset
    assert "became dormant 8" in lines
    assert "won back (to lead or MQL) 2" in lines
    assert "sunset (no answer) 2" in lines
    assert "re-engagement rate: 25.0% (won back / became dormant)" in lines
    # list health: every way off the list, sunset of dormant and lost leads together
    assert "unsubscribed 5" in lines
    assert "suppressed: bounce 3" in lines
    assert "suppressed: complaint 1" in lines
    assert "suppressed: rejected 2" in lines
    assert "sunset (dormant and lost leads) 3" in lines
    # and the sections come between the stages and the email KPIs
    assert lines.index("Re-engagement") < lines.index("List health (leads no longer mailed)")
    assert lines.index("List health (leads no longer mailed)") < lines.index("Email")
    assert lines[lines.index("Email") + 1] == "(nothing in the period)"


def test_the_funnel_report_breaks_down_by_source_week_and_cycle_and_writes_csv(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    # Given two weeks of November with leads from an exhibition and the website, their
    # cycles (and slower ones the period before), a deal won, and an email's MQLs
    store = DynamoCounters(dynamodb, TABLE)
    for day, key, metrics in [
        (date(2026, 11, 2), "stage", {"new>lead": 30, "lead>mql": 3}),
        (date(2026, 11, 9), "stage", {"new>lead": 20, "lead>mql": 5}),
        (date(2026, 11, 2), "source#expo-2026", {"new>lead": 10, "lead>mql": 4}),
        (date(2026, 11, 9), "source#expo-2026", {"mql>customer": 1, "revenue": 1_500_000}),
        (date(2026, 11, 2), "source#(none)", {"new>lead": 40, "lead>mql": 4}),
        (date(2026, 11, 2), "cycle#mql", {"d5": 2, "d9": 1}),
        (date(2026, 11, 9), "cycle#mql", {"d20": 1}),
        (date(2026, 10, 20), "cycle#mql", {"d30": 3}),  # the period before
        (date(2026, 11, 9), "revenue", {"deals": 1, "amount": 1_500_000}),
        (date(2026, 11, 3), "email#welcome#welcome#A", {"sent": 100, "delivered": 98}),
        (date(2026, 11, 9), "email#welcome#welcome#A", {"mql_7d": 2, "mql_14d": 3}),
    ]:
        for metric, by in metrics.items():
            store.count(day, key, metric, by)
    args = ["report", "funnel", "--table", TABLE, "--from", "2026-11-02", "--to", "2026-11-15"]

    status, out, _ = run(capsys, *args, "--conversion-days", "7")

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    # by week, Monday first, with the emails sent
    assert "2026-11-02 30 3 0 0 10.0% 0.0% - 100" in lines
    assert "2026-11-09 20 5 0 0 25.0% 0.0% - 0" in lines
    # by source, biggest first, with its revenue
    assert "(none) 40 4 0 0 10.0% 0.0% - ¥0" in lines
    assert "expo-2026 10 4 0 1 40.0% 0.0% - ¥1,500,000" in lines
    # the buying cycle, against the period before
    assert "created → MQL 4 7.0 30.0 shorter by 23.0" in lines
    assert "average deal value ¥1,500,000" in lines
    # and the email's MQLs within the days asked for, over sent
    assert "welcome welcome A 100 0 98 0.0% 0.0% - 0.00% 2 2.00% 0.0% 0.0% 0.00% 0.00%" in lines

    # When the same report is written as CSV files
    status, out, _ = run(capsys, *args, "--csv", str(tmp_path))

    # Then each table is a file Excel reads as UTF-8, with the text report's cells
    assert status == 0
    written = {Path(line).name for line in out.splitlines()}
    assert {"funnel.csv", "weekly.csv", "by_source.csv", "cycle.csv", "emails.csv"} <= written
    raw = (tmp_path / "by_source.csv").read_bytes()
    assert raw.startswith(codecs.BOM_UTF8)
    with (tmp_path / "by_source.csv").open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == [
        "source",
        "leads",
        "MQL",
        "SQL",
        "customers",
        "→MQL",
        "→SQL",
        "→customer",
        "revenue",
    ]
    assert rows[2] == ["expo-2026", "10", "4", "0", "1", "40.0%", "0.0%", "-", "¥1,500,000"]


def test_the_experiments_report_says_which_variant_is_best_and_what_it_still_needs(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    # Given the welcome email's two subject variants, B clicked more often
    store = DynamoCounters(dynamodb, TABLE)
    for variant, sent, clicks, mqls in [("A", 400, 20, 2), ("B", 380, 31, 5)]:
        key = f"email#welcome#welcome#{variant}"
        store.count(date(2026, 11, 10), key, "sent", sent)
        store.count(date(2026, 11, 11), key, "unique_human_clicks", clicks)
        store.count(date(2026, 11, 20), key, "mql_14d", mqls)
    args = ["report", "experiments", "--table", TABLE, "--from", "2026-11-01", "--to", "2026-11-30"]

    status, out, _ = run(capsys, *args)

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    assert "welcome / welcome (even split; judged on clicks)" in lines
    b_best = probability_b_beats_a(Arm("A", 400, 20), Arm("B", 380, 31))
    assert f"A 400 20 5.00% 2 0.50% {(1 - b_best) * 100:.1f}%" in lines
    assert f"B 380 31 8.16% 5 1.32% {b_best * 100:.1f}%" in lines
    needed = sample_needed([Arm("A", 400, 20), Arm("B", 380, 31)])
    assert needed is not None
    assert any(f"{needed:,}, still needed: {needed - 380:,}" in line for line in lines)

    # and as CSV, one file per step with variants
    status, out, _ = run(capsys, *args, "--csv", str(tmp_path))
    assert status == 0
    assert (tmp_path / "experiment_welcome_welcome.csv").exists()


def test_the_funnel_report_of_an_empty_period_has_no_rates(dynamodb: Any, capsys: Any) -> None:
    status, out, _ = run(
        capsys, "report", "funnel", "--table", TABLE, "--from", "2026-01-01", "--to", "2026-01-02"
    )

    assert status == 0
    assert "lead → customer: -" in out
    assert "re-engagement rate: - (won back / became dormant)" in out
    lines = [" ".join(li.split()) for li in out.splitlines()]
    assert "unsubscribed 0" in lines
    assert "suppressed: bounce 0" in lines
    assert "suppressed: complaint 0" in lines
    assert not any(line.startswith("suppressed: rejected") for line in lines)
    assert "\nEmail\n(nothing in the period)\n" in out
    assert run(capsys, "report", "funnel", "--from", "2026-02-01", "--to", "2026-01-01")[0] == 2


def test_plan_with_given_rates_needs_no_table(capsys: Any) -> None:
    status, out, _ = run(
        capsys, "plan", "--deals", "10", "--rates", "lead_mql=0.2,mql_sql=0.4,sql_won=0.25"
    )

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    assert lines[0] == "Plan for 10 deal(s) won"
    assert "leads 500 20.0% given" in lines
    assert "MQL 100 40.0% given" in lines
    assert "SQL 40 25.0% given" in lines
    assert "customers 10" in lines
    assert run(capsys, "plan", "--deals", "1", "--rates", "lead_mql=2")[0] == 2


def test_plan_falls_back_from_given_to_measured_to_default_rates(
    counters: None, dynamodb: Any, capsys: Any
) -> None:
    status, out, _ = run(
        capsys,
        *["plan", "--deals", "3", "--rates", "sql_won=0.5", "--table", TABLE],
        *["--from", "2026-11-01", "--to", "2026-11-30"],
    )

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    assert "Measured over 2026-11-01 .. 2026-11-30" in lines
    # SQL 3 / 0.5 = 6; MQL 6 / 0.4 (measured) = 15; leads 15 / 0.2 (measured) = 75.
    assert "leads 75 20.0% measured" in lines
    assert "MQL 15 40.0% measured" in lines
    assert "SQL 6 50.0% given" in lines

    status, out, _ = run(
        capsys,
        "plan",
        "--deals",
        "1",
        "--table",
        TABLE,
        "--from",
        "2025-01-01",
        "--to",
        "2025-01-02",
    )
    assert status == 0
    assert " ".join(out.split()).count("default") == 3


# -- the local stack's clock ---------------------------------------------------------------


def test_clock_and_tick_drive_the_local_stack(local_api: str, capsys: Any) -> None:
    status, out, _ = run(capsys, "clock", "advance", "P1D", "--api", local_api)
    assert status == 0
    assert '"offset_s": 86400.0' in out

    status, out, _ = run(capsys, "clock", "--api", local_api)
    assert status == 0
    assert '"now":' in out

    status, out, _ = run(capsys, "tick", "--api", local_api)
    assert status == 0
    assert '"queued": 0' in out

    status, _, err = run(capsys, "clock", "advance", "P1M", "--api", local_api)
    assert status == 2
    assert "HTTP 400" in err


def test_the_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "lead-nurture"
    if not script.exists():
        pytest.skip("the package is not installed in this environment")

    result = subprocess.run(  # noqa: S603 - our own console script
        [str(script), "--help"], capture_output=True, text=True, check=False, timeout=60
    )

    assert result.returncode == 0
    assert "import" in result.stdout
    assert "report" in result.stdout


def test_sending_status_pause_and_resume(dynamodb: Any, capsys: Any) -> None:
    # Given a guard that paused sending after a burst of bounces today
    switch = DynamoSendingSwitch(dynamodb, TABLE)
    store = DynamoCounters(dynamodb, TABLE)
    today = business_day(SystemClock().now())
    store.count(today, "email#welcome#welcome#A", "sent", 600)
    store.count(today, "email#welcome#welcome#A", "hard_bounces", 30)
    assert switch.pause("bounce rate 5.00% of 600 sends", SystemClock().now(), "guard")

    status, out, _ = run(capsys, "sending", "status", "--table", TABLE)

    assert status == 0
    assert "sending: PAUSED" in out
    assert "by guard: bounce rate 5.00% of 600 sends" in out
    assert "600 sent, bounce rate 5.00%" in out

    # When an operator resumes
    status, out, _ = run(capsys, "sending", "resume", "--by", "yamada", "--table", TABLE)

    # Then sending is on, and the rates start again from the resume
    assert status == 0
    assert "sending: on" in out
    assert "by yamada" in out
    assert "0 sent, bounce rate -" in out
    assert not switch.state().paused
    # and a pause by hand says so, once
    assert "paused" in run(capsys, "sending", "pause", "--reason", "x", "--table", TABLE)[1]
    assert "already paused" in run(capsys, "sending", "pause", "--table", TABLE)[1]


def test_the_funnel_report_shows_the_send_time_lift_against_the_holdout(
    dynamodb: Any, capsys: Any
) -> None:
    store = DynamoCounters(dynamodb, TABLE)
    for group, sent, opens, clicks in [
        ("optimised", 200, 60, 12),
        ("holdout", 100, 20, 5),
        ("default", 50, 10, 1),
    ]:
        store.count(date(2026, 11, 10), f"sendtime#{group}", "sent", sent)
        store.count(date(2026, 11, 11), f"sendtime#{group}", "unique_human_opens", opens)
        store.count(date(2026, 11, 11), f"sendtime#{group}", "unique_human_clicks", clicks)

    status, out, _ = run(
        capsys, "report", "funnel", "--table", TABLE, "--from", "2026-11-01", "--to", "2026-11-30"
    )

    assert status == 0
    lines = [" ".join(li.split()) for li in out.splitlines()]
    assert "optimised 200 30.0% 6.0% +50.0% +20.0%" in lines
    assert "default 50 20.0% 2.0%" in lines
    assert "holdout 100 20.0% 5.0%" in lines
