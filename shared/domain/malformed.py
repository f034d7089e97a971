"""Records that can never be processed, however often they are delivered."""

from __future__ import annotations


class MalformedRecord(ValueError):
    """A queue message or stream record that no retry can fix (not JSON, not the shape
    expected, a value that cannot be read): it goes to the dead-letter queue at once.

    The text says what is wrong, never the value: it is logged.
    """
