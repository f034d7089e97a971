"""Content files in YAML (programs, scoring, engagement rules, assets), read safely.

PyYAML is imported on the first file parsed, not by the modules that can read one, so a
function that loads no content (the scheduler) does not import it. The document is
parsed by libyaml (``CSafeLoader``, in PyYAML's wheels; some ten times faster than the
pure-Python parser on a cold start) when it is there, by the pure-Python ``SafeLoader``
otherwise: the two build the same values (YAML 1.1 with the safe types; the tags are
resolved by the same Python code, so ``18:00`` is the number 1080 with both).

A deployment parses nothing: the Lambda build (``infra/packaging.py``) stores each
file's document beside it as JSON (``<name>.yaml.json``, ``write_snapshot``), and
``read_yaml`` reads that when it is there, with the ``json`` module that botocore has
already imported, so a cold start neither imports PyYAML nor runs its constructors.
Content holds only JSON's types (strings, numbers, booleans, null, lists, mappings with
string keys); the build refuses a document that would read back as anything else.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SNAPSHOT_SUFFIX = ".json"


def read_yaml(path: Path) -> Any:
    """The document in ``path`` (its build-time snapshot, where the build made one);
    malformed YAML is a ``ValueError`` that says where."""
    try:
        snapshot = snapshot_path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return parse_yaml(path)
    return json.loads(snapshot)


def parse_yaml(path: Path) -> Any:
    """The document in ``path``, parsed from the YAML."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc


def snapshot_path(path: Path) -> Path:
    return path.with_name(path.name + SNAPSHOT_SUFFIX)


def write_snapshot(path: Path) -> Path:
    """Parse ``path`` and store its document beside it as JSON, for ``read_yaml``; a
    document that JSON would not give back unchanged is a ``ValueError``."""
    document = parse_yaml(path)
    try:
        text = json.dumps(document, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path.name}: content must hold JSON's types only: {exc}") from exc
    if not _same(json.loads(text), document):
        raise ValueError(f"{path.name}: content must hold JSON's types only (text keys)")
    snapshot = snapshot_path(path)
    snapshot.write_text(text, encoding="utf-8")
    return snapshot


def _same(read: Any, document: Any) -> bool:
    """Equal values of the same types all the way down (``1 == 1.0 == True`` is not)."""
    if type(read) is not type(document):
        return False
    if isinstance(document, dict):
        return list(read) == list(document) and all(_same(read[k], v) for k, v in document.items())
    if isinstance(document, list):
        return len(read) == len(document) and all(map(_same, read, document))
    return bool(read == document)
