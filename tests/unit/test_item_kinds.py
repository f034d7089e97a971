"""One table of the item kinds: the README's and the DynamoDB adapter's agree with each
other and with the keys the adapters write (every literal key prefix in their code)."""

from __future__ import annotations

import re
from pathlib import Path

import shared.adapters.items as items_adapter

ROOT = Path(__file__).resolve().parents[2]
ADAPTERS = ROOT / "shared" / "adapters"
# A key as tables write it: its literal head up to the first placeholder or '@'.
_HEAD = re.compile(r"^[A-Z_]+#?|^[A-Z]+$")


def heads(cell: str) -> str:
    """``LEAD#<id>`` -> ``LEAD#``; ``<kind>@<shard>`` -> ``""`` (no literal head)."""
    text = cell.strip().strip("`").strip()
    found = _HEAD.match(text)
    return found.group(0) if found else ""


def kinds(table_text: str) -> set[tuple[str, str]]:
    """(pk head, sk head) of each row of a Markdown or reST-in-docstring table."""
    rows = set()
    for line in table_text.splitlines():
        cells = line.strip().strip("|").split("|")
        if len(cells) < 4 or set(cells[1].strip()) <= {"-", " "} or cells[1].strip() == "pk":
            continue
        rows.add((heads(cells[1]), heads(cells[2])))
    return rows


def readme_table() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Data model") :]
    return section[: section.index("\n\n", section.index("| item |"))]


def docstring_table() -> str:
    doc = items_adapter.__doc__ or ""
    start = doc.index("| item")
    return doc[start : doc.index("\n\n", start)]


def code_heads() -> set[str]:
    """Literal key heads written in the adapters: "LEAD#", f"EVENT#{...}", "PROFILE"."""
    found: set[str] = set()
    for path in ADAPTERS.glob("*.py"):
        source = path.read_text(encoding="utf-8")
        found |= set(re.findall(r"""f?["']([A-Z]+#)""", source))
        # key constants (PROFILE = "PROFILE", VISITOR_LINK = "LINK") and inline keys
        constant = r"""^(?:[A-Z_]*(?:PK|SK|LINK)|PROFILE) = ["']([A-Z]+)["']$"""
        found |= set(re.findall(constant, source, re.MULTILINE))
        found |= set(re.findall(r"""["'][ps]k["']: ["']([A-Z]+)["']""", source))
    return found


def test_the_readme_and_the_adapter_list_the_same_item_kinds() -> None:
    assert kinds(readme_table()) == kinds(docstring_table())
    assert len(kinds(readme_table())) >= 16


def test_every_key_the_adapters_write_is_in_the_table_and_nothing_else() -> None:
    table = {head for row in kinds(readme_table()) for head in row if head}
    assert code_heads() == table
