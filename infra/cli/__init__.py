"""The operator CLI (``lead-nurture``): import lead lists, check and preview content,
report the funnel and plan, move the local stack's clock. Not part of any function."""

from infra.cli.main import main

__all__ = ["main"]
