"""``lead-nurture import-purchases`` and ``report customers`` against moto, in process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from shared.adapters.leads import DynamoLeadRepository
from shared.domain.leads import Stage
from tests.integration.conftest import TABLE, all_items
from tests.integration.test_cli import posted, run

# An order system's export as Excel saves it for Japanese users (CP932), amounts with
# separators and the yen sign, dates with slashes, an address typed in full-width letters.
ORDERS = [
    "受注番号,受注日,メールアドレス,商品名,受注金額,担当者",
    'SO-1001,2026/11/02,taro.yamada@example.co.jp,standard,"￥1,200,000",佐藤',
    "SO-1002,2026/11/20,ｔａｒｏ.yamada＠Example.co.jp,analytics,\\300000,佐藤",
    "SO-1003,2026/11/21,nobody@example.jp,standard,100000,佐藤",
    "SO-1004,2026年11月22日,hanako.sato@example.jp,standard,たくさん,鈴木",
    ",,,,,",
]


@pytest.fixture(autouse=True)
def _environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ENDPOINT_URL", "TABLE_NAME", "LEAD_NURTURE_CONTENT", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def orders(tmp_path: Path) -> Path:
    path = tmp_path / "orders.csv"
    path.write_bytes("\r\n".join(ORDERS).encode("cp932") + b"\r\n")
    return path


@pytest.fixture
def buyers(post: Any, repository: DynamoLeadRepository) -> dict[str, str]:
    return {
        address: posted(post, repository, email=address, company="株式会社テスト商事")
        for address in ("taro.yamada@example.co.jp", "hanako.sato@example.jp")
    }


def test_an_order_export_is_recorded_once_however_often_it_is_imported(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    buyers: dict[str, str],
    orders: Path,
    capsys: Any,
) -> None:
    status, out, _ = run(capsys, "import-purchases", str(orders), "--table", TABLE)

    assert status == 1  # two rows were rejected
    assert "受注番号 -> purchase_id" in out
    assert "受注金額 -> amount" in out
    assert "2 purchases recorded, 0 recorded before" in out
    assert "rejected row 4: no lead with the address nobody@example.jp" in out
    assert "rejected row 5: amount (invalid_amount)" in out
    lead = repository.get(buyers["taro.yamada@example.co.jp"])
    assert lead is not None
    assert lead.stage is Stage.CUSTOMER
    assert lead.purchases is not None
    assert (lead.purchases.count, lead.purchases.total) == (2, 1_500_000)
    assert lead.purchases.products == ("analytics", "standard")
    assert lead.rank is not None
    assert lead.rank.segment == "stable"
    untouched = repository.get(buyers["hanako.sato@example.jp"])
    assert untouched is not None
    assert untouched.stage is Stage.LEAD

    items = all_items(dynamodb)
    status, out, _ = run(capsys, "import-purchases", str(orders), "--table", TABLE)
    assert "0 purchases recorded, 2 recorded before" in out
    assert all_items(dynamodb) == items


def test_an_export_with_a_title_above_its_headers_keeps_its_row_numbers(
    dynamodb: Any,
    repository: DynamoLeadRepository,
    buyers: dict[str, str],
    tmp_path: Path,
    capsys: Any,
) -> None:
    path = tmp_path / "orders.csv"
    title = ["受注一覧（2026年11月）,,,,,", ",,,,,"]
    path.write_bytes("\r\n".join([*title, *ORDERS]).encode("cp932") + b"\r\n")

    status, out, _ = run(capsys, "import-purchases", str(path), "--table", TABLE)

    assert status == 1
    assert "2 purchases recorded, 0 recorded before" in out
    assert "見出し行 / header row: 3" in out
    # the rows are named as the spreadsheet numbers them, two further down
    assert "rejected row 6: no lead with the address nobody@example.jp" in out


def test_a_dry_run_checks_every_row_and_writes_nothing(
    dynamodb: Any, buyers: dict[str, str], orders: Path, capsys: Any
) -> None:
    items = all_items(dynamodb)
    status, out, _ = run(capsys, "import-purchases", str(orders), "--table", TABLE, "--dry-run")
    assert status == 1
    assert "4 rows checked (dry run: nothing written)" in out
    assert out.count("rejected row") == 2
    assert all_items(dynamodb) == items


def test_a_file_without_the_columns_a_purchase_needs_names_them(
    tmp_path: Path, capsys: Any
) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("注文,メールアドレス,金額\nA,a@example.jp,100\n", encoding="utf-8")
    status, _, err = run(capsys, "import-purchases", str(path), "--table", TABLE)
    assert status == 2
    assert "no column for date, product" in err
    status, _, err = run(
        capsys, "import-purchases", str(path), "--table", TABLE, "--map", "注文=colour"
    )
    assert status == 2
    assert "--map expects" in err


def test_the_customer_report_shows_segments_now_their_revenue_and_the_moves(
    dynamodb: Any, buyers: dict[str, str], orders: Path, capsys: Any, tmp_path: Path
) -> None:
    run(capsys, "import-purchases", str(orders), "--table", TABLE)

    status, out, _ = run(capsys, "report", "customers", "--table", TABLE)

    assert status == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    # one customer, stable now; both purchases counted by the segment each put it in
    assert rows["stable"][-5:] == ["1", "100.0%", "1", "¥300,000", "20.0%"]
    assert rows["new"][-5:] == ["0", "0.0%", "1", "¥1,200,000", "80.0%"]
    assert rows["loyal"][-5:-3] == ["0", "0.0%"]
    moves = [line.split() for line in out.splitlines() if line.startswith("2026-")]
    assert sorted(m[1:] for m in moves) == [["new", "stable", "1"], ["none", "new", "1"]]

    status, out, _ = run(
        capsys, "report", "customers", "--table", TABLE, "--csv", str(tmp_path / "csv")
    )
    assert status == 0
    assert (tmp_path / "csv" / "customer_segments.csv").read_text(encoding="utf-8-sig").count(
        "\n"
    ) == 6
