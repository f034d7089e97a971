"""Content files in YAML (programs, scoring, engagement rules, assets), read safely.

PyYAML is imported on the first file read, not by the modules that can read one, so a
function that loads no content (the scheduler) does not import it. The document is
parsed by libyaml (``CSafeLoader``, in PyYAML's wheels; some ten times faster than the
pure-Python parser on a cold start) when it is there, by the pure-Python ``SafeLoader``
otherwise: the two build the same values (YAML 1.1 with the safe types; the tags are
resolved by the same Python code, so ``18:00`` is the number 1080 with both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def read_yaml(path: Path) -> Any:
    """The document in ``path``; malformed YAML is a ``ValueError`` that says where."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - a safe loader
    except yaml.YAMLError as exc:
        raise ValueError(str(exc)) from exc
