"""Content files: parsed from YAML, or read from the snapshot a deployment ships."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.yamlfile import parse_yaml, read_yaml, snapshot_path, write_snapshot

DOCUMENT = """\
send_at: 18:00  # YAML 1.1: the number 1080
weight: 1.5
steps: [welcome, tips]
enabled: true
note: 株式会社サンプル
empty: null
"""


def test_a_snapshot_reads_back_as_the_yaml_parses(tmp_path: Path) -> None:
    path = tmp_path / "program.yaml"
    path.write_text(DOCUMENT, encoding="utf-8")
    parsed = read_yaml(path)

    write_snapshot(path)

    assert snapshot_path(path).name == "program.yaml.json"
    assert read_yaml(path) == parsed == parse_yaml(path)
    assert parsed["send_at"] == 1080


def test_a_deployment_reads_the_snapshot_not_the_yaml(tmp_path: Path) -> None:
    path = tmp_path / "scoring.yaml"
    path.write_text("points: 5\n", encoding="utf-8")
    write_snapshot(path)
    path.write_text("points: [unclosed\n", encoding="utf-8")  # would not parse

    assert read_yaml(path) == {"points": 5}


@pytest.mark.parametrize(
    "document",
    ["day: 2026-04-01\n", "1: one\n", "ratio: .nan\n", "when: 2026-04-01T09:00:00Z\n"],
    ids=["date", "number key", "NaN", "timestamp"],
)
def test_content_json_would_not_give_back_unchanged_has_no_snapshot(
    tmp_path: Path, document: str
) -> None:
    path = tmp_path / "assets.yaml"
    path.write_text(document, encoding="utf-8")

    with pytest.raises(ValueError, match=r"assets\.yaml: content must hold JSON.s types"):
        write_snapshot(path)
    assert not snapshot_path(path).exists()


def test_malformed_yaml_says_where(tmp_path: Path) -> None:
    path = tmp_path / "engagement.yaml"
    path.write_text("agents: [unclosed\n", encoding="utf-8")

    with pytest.raises(ValueError, match="line"):
        read_yaml(path)
