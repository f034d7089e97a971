"""Lists as services export them, imported with no --map into moto: Sansan and Eight
business cards and an exhibition's badge scans (tests/fixtures/lists), in the encoding
each service writes and in the other one; the column report printed before anything is
written; and the clock rows are stamped with (the local stack's, when it is the target)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from infra.cli import local, main
from infra.cli.importing import display_width
from infra.provision import create_table
from shared.adapters.leads import DynamoLeadRepository
from shared.domain.leads import Lead
from shared.domain.normalize import JAPAN
from tests.integration.conftest import TABLE, all_items

FIXTURES = Path(__file__).parents[1] / "fixtures" / "lists"
# Each file in the encoding its service writes, and the other one it may come in.
SANSAN = ("sansan_cards.csv", "cp932")
EIGHT = ("eight_cards.csv", "utf-8-sig")
BADGE_SCAN = ("badge_scan.csv", "cp932")
OTHER = {"cp932": "utf-8-sig", "utf-8-sig": "cp932"}


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "LEAD_NURTURE_CONTENT", "LOCAL_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # no cdk.json: the deployment defaults apply


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def fixture_in(tmp_path: Path, fixture: tuple[str, str], encoding: str) -> Path:
    """The fixture as its service wrote it, or re-encoded into ``encoding``."""
    name, written = fixture
    if encoding == written:
        return FIXTURES / name
    path = tmp_path / name
    path.write_bytes((FIXTURES / name).read_bytes().decode(written).encode(encoding))
    return path


def import_args(path: Path, *extra: str) -> list[str]:
    return ["import", str(path), "--table", TABLE, "--form-type", "contact", *extra]


def count(out: str, label: str) -> int:
    line = next(li for li in out.splitlines() if li.strip().startswith(label))
    return int(line.split()[-1])


def report_line(out: str, header: str) -> str:
    """The column report's line of ``header``, its padding collapsed."""
    line = next(li for li in out.splitlines() if li.strip().startswith(f"{header} "))
    return " ".join(line.split())


def stored(repository: DynamoLeadRepository, email: str) -> Lead:
    lead = repository.find_by_email(email)
    assert lead is not None, email
    return lead


def in_japan(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=JAPAN).astimezone(UTC)


def recent(moment: datetime, now: datetime | None = None) -> bool:
    return abs(moment - (now or datetime.now(UTC))) < timedelta(minutes=2)


# -- the three exports, no --map -----------------------------------------------------------


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig"])
def test_a_sansan_export_imports_every_column_a_lead_keeps(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    capsys: Any,
    tmp_path: Path,
    encoding: str,
) -> None:
    path = fixture_in(tmp_path, SANSAN, encoding)

    status, out, _ = run(capsys, *import_args(path, "--source", "expo-2026-osaka"))

    assert status == 1  # the card without an address
    assert out.startswith(f"import of sansan_cards.csv ({encoding}, 6 rows)")
    assert (count(out, "created"), count(out, "rejected"), count(out, "blank rows")) == (4, 1, 1)
    assert "row 7: メールアドレス (email): 必須項目です。 [required]" in out

    yamada = stored(repository, "taro.yamada@sample-ss.co.jp")
    assert (yamada.company, yamada.department, yamada.job_title) == (
        "株式会社サンプル製作所",
        "情報システム部",
        "部長",
    )
    assert (yamada.family_name, yamada.given_name, yamada.name) == ("山田", "太郎", "山田 太郎")
    assert (yamada.postcode, yamada.address) == (
        "530-0001",
        "大阪府大阪市北区梅田1-1-1 梅田ビル10F",
    )
    assert yamada.prefecture == "大阪府"  # from the address: segments and routing need it
    assert (yamada.phone, yamada.phone_normalized) == ("06-1234-5678", "+81612345678")
    assert (yamada.phone_direct, yamada.mobile) == ("06-1234-5600", "090-1234-5678")
    assert yamada.website == "https://www.sample-ss.co.jp/"
    assert yamada.sales_owner == "佐藤 健一"
    # The exchange date (Japan) is the first touch; the import is stamped now.
    assert yamada.first_touch.at == in_japan(2026, 10, 15)
    assert yamada.first_touch.source == "expo-2026-osaka"
    assert recent(yamada.created_at)
    assert yamada.last_touch.at == yamada.created_at

    # Full-width digits and a bare host name, as card scanning writes them
    takahashi = stored(repository, "ichiro.takahashi@takahashi-kogyo.jp")
    assert (takahashi.family_name, takahashi.given_name, takahashi.name) == (
        "髙橋",
        "一郎",
        "髙橋 一郎",
    )
    assert (takahashi.postcode, takahashi.address) == ("100-0005", "東京都千代田区丸の内1-1-1")
    assert (takahashi.phone, takahashi.mobile) == ("03-5555-1234", "080-1111-2222")
    assert takahashi.website == "https://www.takahashi-kogyo.jp"

    # Two addresses in one cell: the first is the lead's
    assert stored(repository, "hanako.suzuki@midori-shoji.co.jp").postcode == "460-0008"
    assert repository.find_by_email("h.suzuki@example.com") is None
    assert "rows with more than one address, imported with the first: 4" in out

    # A Latin name stays whole: which part is the family name is not certain
    smith = stored(repository, "john.smith@example.com")
    assert (smith.name, smith.family_name, smith.given_name) == ("John Smith", None, None)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "cp932"])
def test_an_eight_export_imports_its_four_phone_numbers_and_exchange_date(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    capsys: Any,
    tmp_path: Path,
    encoding: str,
) -> None:
    path = fixture_in(tmp_path, EIGHT, encoding)

    status, out, _ = run(capsys, *import_args(path))

    assert status == 0
    assert (count(out, "created"), count(out, "blank rows")) == (4, 1)
    tanaka = stored(repository, "hanako.tanaka@mirai-logi.co.jp")
    assert (tanaka.phone, tanaka.phone_department, tanaka.phone_direct, tanaka.mobile) == (
        "03-1111-2222",
        "03-1111-2233",
        "03-1111-2244",
        "090-3333-4444",
    )
    assert (tanaka.name, tanaka.department) == ("田中 花子", "営業本部 第一営業部")
    assert (tanaka.postcode, tanaka.prefecture) == ("150-0002", "東京都")
    assert tanaka.first_touch.at == in_japan(2026, 11, 5)
    assert tanaka.sales_owner is None  # Eight's export has no owner column

    watanabe = stored(repository, "naoki.watanabe@sora-denki.co.jp")
    assert (watanabe.postcode, watanabe.phone, watanabe.mobile) == (
        "220-0012",
        "(045)123-4567",
        "070-1234-5678",
    )
    assert watanabe.phone_normalized == "+81451234567"
    assert watanabe.website == "https://sora-denki.co.jp"

    kimura = stored(repository, "sakura@hana-kikaku.jp")
    assert (kimura.postcode, kimura.prefecture) == ("810-0001", "福岡県")
    assert "imported with the first: 5" in out
    # The address's domain is lower-cased, its local part kept as written
    assert stored(repository, "makoto.kato@mirai-logi.co.jp").email == (
        "MAKOTO.KATO@mirai-logi.co.jp"
    )
    # Eight's tag columns are not the lead's: reported, not imported
    assert report_line(out, "展示会2026") == (
        "展示会2026 3/4 → 無視: 不明な列 / ignored: unknown column "
        "(--map '展示会2026=FIELD' reads it)"
    )


@pytest.mark.parametrize("encoding", ["cp932", "utf-8-sig"])
def test_a_badge_scan_splits_full_names_where_that_is_certain(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    capsys: Any,
    tmp_path: Path,
    encoding: str,
) -> None:
    path = fixture_in(tmp_path, BADGE_SCAN, encoding)

    status, out, _ = run(capsys, *import_args(path, "--source", "expo-2026-tokyo"))

    assert status == 1
    assert (count(out, "created"), count(out, "rejected")) == (3, 1)
    assert "row 6: メールアドレス (email): メールアドレスの形式が正しくありません。" in out

    kobayashi = stored(repository, "makoto.kobayashi@hokkai-sys.co.jp")
    assert (kobayashi.family_name, kobayashi.given_name, kobayashi.name) == (
        "小林",
        "誠",
        "小林 誠",
    )
    assert kobayashi.name_kana == "コバヤシ マコト"
    # Excel dropped the postcode's leading zero (0600001); the parts of the address are
    # joined, the prefecture kept apart as the list gives it
    assert (kobayashi.postcode, kobayashi.prefecture) == ("060-0001", "北海道")
    assert kobayashi.address == "札幌市中央区北一条西1-1 札幌ビル3F"
    assert (kobayashi.industry, kobayashi.company_size) == ("情報通信業", "50-99名")
    assert kobayashi.interests == ("クラウド", "セキュリティ")
    assert kobayashi.sales_owner == "鈴木 一郎"
    assert kobayashi.first_touch.at == in_japan(2026, 11, 18, 10, 23, 45)

    # No space: 中村花子 could be split in more than one place, so it is not
    nakamura = stored(repository, "hanako.nakamura@nakamura-seiki.co.jp")
    assert (nakamura.name, nakamura.family_name, nakamura.given_name) == ("中村花子", None, None)
    assert (nakamura.mobile, nakamura.postcode) == ("090-5555-6666", "541-0041")
    assert nakamura.message == "ブースで実機デモ"

    # An ideographic space splits as a space does
    ito = stored(repository, "kenta.ito@ito-shoten.co.jp")
    assert (ito.family_name, ito.given_name, ito.name) == ("伊藤", "健太", "伊藤 健太")
    assert ito.sales_owner == "山本 彩"


def test_a_hubspot_export_imports_its_english_columns(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any
) -> None:
    status, out, _ = run(capsys, *import_args(FIXTURES / "hubspot_contacts.csv"))

    assert status == 0
    assert count(out, "created") == 2
    sato = stored(repository, "hanako.sato@kita-seiki.co.jp")
    assert (sato.family_name, sato.given_name, sato.company) == ("佐藤", "花子", "株式会社北精機")
    assert (sato.job_title, sato.sales_owner) == ("営業部長", "鈴木 一郎")
    assert (sato.phone, sato.mobile) == ("03-5555-0101", "090-5555-0102")
    assert (sato.postcode, sato.prefecture, sato.address) == (
        "100-0005",
        "東京都",
        "丸の内1-1-1 千代田区",  # joined in the export's column order
    )
    assert (sato.industry, sato.company_size) == ("Manufacturing", "51-200")
    tanaka = stored(repository, "ken.tanaka@example.com")
    assert (tanaka.prefecture, tanaka.phone_normalized) == ("大阪府", "+81655550201")
    assert tanaka.website == "https://minami-trading.example.com"
    for added in ("Record ID", "Lifecycle Stage", "Create Date"):
        assert "ignored: unknown column" in report_line(out, added)


@pytest.mark.parametrize("fixture", [SANSAN, EIGHT, BADGE_SCAN], ids=["sansan", "eight", "badge"])
def test_importing_an_export_again_changes_nothing(
    dynamodb: Any, capsys: Any, fixture: tuple[str, str]
) -> None:
    args = import_args(FIXTURES / fixture[0], "--source", "expo", "--consent-source", "expo-v1")
    run(capsys, *args)
    before = all_items(dynamodb)

    _, out, _ = run(capsys, *args)

    assert (count(out, "created"), count(out, "merged (updated)")) == (0, 0)
    assert count(out, "unchanged (already imported)") >= 3
    assert all_items(dynamodb) == before


def test_what_cards_write_in_cells_is_read_and_a_wrong_field_leaves_out_only_itself(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path
) -> None:
    path = tmp_path / "cards.csv"
    rows = [
        "会社名,部署名,姓,名,e-mail,郵便番号,住所,TEL会社,TEL直通",
        # Alt+Enter in an address and a department cell; a number with its note and
        # extension, another with dots
        '株式会社ミライ物流,"営業本部\n第一営業部",田中,花子,hanako@mirai-logi.co.jp,'
        '150-0002,"東京都渋谷区渋谷2-2-2\n渋谷スクエア5F",03-1111-2222（代表）,'
        "03-1111-2244 内線123",
        "ソラ電機,技術部,渡辺,直樹,naoki@sora-denki.co.jp,,,045.123.4567,",
        # a postcode cut short and a number that is none: the lead without them
        "ハナ企画,,木村,さくら,sakura@hana-kikaku.jp,810-00,福岡県福岡市,TELなし,",
        # an address that is none: the row cannot be imported
        "ハナ企画,,木村,一郎,ichiro@@hana-kikaku.jp,,,,",
        # markup where a number should be: neither can this one
        "ハナ企画,,木村,次郎,jiro@hana-kikaku.jp,,,<script>alert(1)</script>,",
    ]
    path.write_text("\r\n".join(rows) + "\r\n", encoding="cp932")

    status, out, _ = run(capsys, *import_args(path))

    assert status == 1  # the row without an address
    assert (count(out, "created"), count(out, "rejected")) == (3, 2)
    tanaka = stored(repository, "hanako@mirai-logi.co.jp")
    assert (tanaka.department, tanaka.address) == (
        "営業本部 第一営業部",
        "東京都渋谷区渋谷2-2-2 渋谷スクエア5F",
    )
    assert (tanaka.phone, tanaka.phone_direct) == ("03-1111-2222(代表)", "03-1111-2244 内線123")
    assert tanaka.phone_normalized == "+81311112222"
    assert stored(repository, "naoki@sora-denki.co.jp").phone_normalized == "+81451234567"
    kimura = stored(repository, "sakura@hana-kikaku.jp")
    assert (kimura.postcode, kimura.phone, kimura.address) == (None, None, "福岡県福岡市")
    dropped = out.split("Rows imported without a field:\n")[1].split("Rejected rows:")[0]
    assert len(dropped.splitlines()) == 1
    assert dropped.strip().startswith("row 4: ")
    assert "[invalid_postcode]" in dropped
    assert "[invalid_phone]" in dropped
    rejected = out.split("Rejected rows:")[1]
    assert "row 5:" in rejected
    assert "row 6: 電話番号 (phone): HTMLタグは入力できません。 [markup]" in rejected


# -- the column report -----------------------------------------------------------------------


def test_the_column_report_says_what_each_column_is_read_as_before_anything_is_written(
    dynamodb: Any, capsys: Any
) -> None:
    status, out, _ = run(capsys, *import_args(FIXTURES / BADGE_SCAN[0], "--dry-run"))

    assert status == 1
    assert all_items(dynamodb) == []
    lines = out.splitlines()
    assert lines[:3] == [
        "Dry run: import of badge_scan.csv (cp932, 5 rows)",
        "列の読み取り / How each column is read (値のある行 / rows with a value):",
        "  来場者ID            4/4  → 無視: リードに持たない列 / ignored: not kept on a lead",
    ]
    # Each report line: the header, the rows with a value in it, what it is read as
    assert [
        report_line(out, h) for h in ("来場日時", "氏名", "住所2", "対応者", "アンケート1")
    ] == [
        "来場日時 4/4 → touched_at（名刺交換日・来場日時 / Date met）",
        "氏名 4/4 → name（お名前 / Name）; 姓と名に分割 / split into family and given name: 3",
        "住所2 1/4 → address（住所 / Address）",
        "対応者 4/4 → sales_owner（営業担当者 / Sales owner）",
        "アンケート1 2/4 → 無視: 不明な列 / ignored: unknown column "
        "(--map 'アンケート1=FIELD' reads it)",
    ]
    # Japanese headers are padded by their width on a terminal, so the counts line up
    counts = {display_width(li[: li.index("/4")]) for li in lines[2:22]}
    assert len(counts) == 1
    # and the outcome follows the report
    assert lines.index("  would be created                   3") > 21


def test_map_overrides_the_dictionary_and_the_report_says_so(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any
) -> None:
    path = FIXTURES / BADGE_SCAN[0]

    _, out, _ = run(capsys, *import_args(path, "--map", "アンケート1=message", "--map", "備考=-"))

    assert report_line(out, "アンケート1") == (
        "アンケート1 2/4 → message（お問い合わせ内容 / Message） (--map)"
    )
    assert report_line(out, "備考") == "備考 1/4 → 無視 / ignored (--map)"
    assert stored(repository, "hanako.nakamura@nakamura-seiki.co.jp").message == "商談希望"


def test_a_workbook_of_badge_scans_keeps_its_number_and_date_cells(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["来場日時", "氏名", "メールアドレス", "郵便番号", "携帯電話番号", "TEL直通"])
    sheet.append(
        [
            datetime(2026, 11, 18, 10, 23),
            "小林 誠",
            "makoto.kobayashi@hokkai-sys.co.jp",
            600001,  # a number cell: Excel dropped 0600001's zero
            9012345678,
            112223333,
        ]
    )
    workbook.save(tmp_path / "scans.xlsx")

    status, _, _ = run(capsys, *import_args(tmp_path / "scans.xlsx"))

    assert status == 0
    lead = stored(repository, "makoto.kobayashi@hokkai-sys.co.jp")
    assert (lead.postcode, lead.mobile, lead.phone_direct) == (
        "060-0001",
        "09012345678",
        "0112223333",
    )
    assert lead.first_touch.at == in_japan(2026, 11, 18, 10, 23)
    assert (lead.family_name, lead.given_name) == ("小林", "誠")


def test_a_sheet_with_a_title_above_its_headers_is_read_from_its_header_row(
    dynamodb: Any, repository: DynamoLeadRepository, capsys: Any, tmp_path: Path
) -> None:
    from openpyxl import Workbook

    # Given a workbook as people make them: a title, a date, a blank row, then headers
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(["DXフェア2026 来場者リスト"])
    sheet.append(["出力日", "2026/11/20"])
    sheet.append([])
    sheet.append(["会社名", "氏名", "メールアドレス"])
    sheet.append(["株式会社ホッカイ", "小林 誠", "makoto.kobayashi@hokkai-sys.co.jp"])
    workbook.save(tmp_path / "visitors.xlsx")

    status, out, _ = run(capsys, *import_args(tmp_path / "visitors.xlsx"))

    # Then the fourth row is read as the headers, and the rows below it as leads
    assert status == 0
    assert "見出し行 / header row: 4" in out
    assert count(out, "created") == 1
    lead = stored(repository, "makoto.kobayashi@hokkai-sys.co.jp")
    assert (lead.company, lead.name) == ("株式会社ホッカイ", "小林 誠")


def test_a_sheet_without_an_address_column_in_its_first_rows_says_so(
    dynamodb: Any, capsys: Any, tmp_path: Path
) -> None:
    # Given a list whose address column has a header the dictionary does not know, and
    # a row that says メール (how the lead would like to be contacted) beside an address
    path = tmp_path / "list.csv"
    path.write_text(
        "来場者リスト\n会社名,氏名,連絡先,希望連絡方法\nA社,山田 太郎,taro@a.co.jp,メール\n",
        encoding="utf-8",
    )

    status, _, err = run(capsys, *import_args(path))

    assert status == 2
    assert "no email column" in err


# -- the clock rows are stamped with ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    """A moto server on this machine, as the local stack's table is."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def test_into_the_local_stack_rows_are_stamped_with_its_moved_clock(
    moto_endpoint: str, local_api: str, capsys: Any
) -> None:
    # Given the local stack's clock moved 30 days on
    client = boto3.client("dynamodb", endpoint_url=moto_endpoint)
    create_table(client, TABLE)
    local.advance(local_api, "P30D")
    stack_now = datetime.now(UTC) + timedelta(days=30)

    status, _, _ = run(
        capsys,
        *import_args(FIXTURES / EIGHT[0], "--endpoint-url", moto_endpoint, "--api", local_api),
    )

    assert status == 0
    lead = stored(DynamoLeadRepository(client, TABLE), "hanako.tanaka@mirai-logi.co.jp")
    assert recent(lead.created_at, stack_now)
    assert recent(lead.last_touch.at, stack_now)
    assert lead.first_touch.at == in_japan(2026, 11, 5)  # the card's date, not the clock's
    (posted,) = DynamoLeadRepository(client, TABLE).timeline(lead.lead_id)[-1:]
    assert recent(posted.at, stack_now)


def test_a_local_table_without_its_stack_is_an_error_not_the_wrong_clock(capsys: Any) -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    status, out, err = run(
        capsys,
        *import_args(FIXTURES / EIGHT[0], "--endpoint-url", closed, "--api", closed),
    )

    assert status == 2
    assert "cannot reach the local stack" in err
    assert out == ""
