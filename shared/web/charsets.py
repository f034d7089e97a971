"""Character encodings that forms post in: UTF-8 and the legacy Japanese ones.

Labels and decoders follow the WHATWG Encoding Standard, which is what browsers
implement: a page served as Shift_JIS, EUC-JP or ISO-2022-JP posts its forms in that
encoding (names too), byte for byte as its encoder writes them. Python's codecs of the
same names decode less than browsers send: ``shift_jis``, ``euc_jp`` and
``iso2022_jp`` lack the NEC and IBM extensions of Windows (①, 髙, 﨑), which WHATWG's
index jis0208 includes. That index is code page 932's double-byte table, so every JIS
X 0208 character is decoded through ``cp932``. Decoding is strict: an invalid byte
raises ``UnicodeDecodeError``; nothing is ever replaced by U+FFFD.
"""

from __future__ import annotations

import re
from collections.abc import Callable

UTF_8 = "UTF-8"
SHIFT_JIS = "Shift_JIS"
EUC_JP = "EUC-JP"
ISO_2022_JP = "ISO-2022-JP"

# https://encoding.spec.whatwg.org/#names-and-labels (the encodings we decode)
_LABELS = {
    UTF_8: (
        "unicode-1-1-utf-8",
        "unicode11utf8",
        "unicode20utf8",
        "utf-8",
        "utf8",
        "x-unicode20utf8",
    ),
    SHIFT_JIS: (
        "csshiftjis",
        "ms932",
        "ms_kanji",
        "shift-jis",
        "shift_jis",
        "sjis",
        "windows-31j",
        "x-sjis",
    ),
    EUC_JP: ("cseucpkdfmtjapanese", "euc-jp", "x-euc-jp"),
    ISO_2022_JP: ("csiso2022jp", "iso-2022-jp"),
}
_ENCODINGS = {label: name for name, labels in _LABELS.items() for label in labels}

# cp932 decodes these lone bytes to the Private Use Area; WHATWG's decoder errs on them.
_NOT_SHIFT_JIS = re.compile("[\uf8f0-\uf8f3]")
_ISO_2022_JP_ESCAPE = re.compile(rb"\x1b(\(B|\(J|\(I|\$@|\$B)")


def encoding_for(label: str) -> str | None:
    """The encoding's name for a label (any case, outer whitespace ignored), or None."""
    return _ENCODINGS.get(label.strip(" \t\n\f\r").lower())


def decode(data: bytes, encoding: str) -> str:
    """``data`` as text in ``encoding`` (a name from ``encoding_for``), strictly."""
    return _DECODERS[encoding](data)


def _utf_8(data: bytes) -> str:
    return data.decode("utf-8")


def _shift_jis(data: bytes) -> str:
    text = data.decode("cp932")
    if _NOT_SHIFT_JIS.search(text):
        raise _error(SHIFT_JIS, data, 0, len(data))
    return text


def _jis0208(encoding: str, data: bytes, at: int, row: int, cell: int) -> str:
    """The character at ``row``/``cell`` (0-based) of WHATWG's index jis0208."""
    lead, trail = divmod(row * 94 + cell, 188)  # as a Shift_JIS pointer
    sjis = bytes((lead + (0x81 if lead < 0x1F else 0xC1), trail + (0x40 if trail < 0x3F else 0x41)))
    try:
        return sjis.decode("cp932")
    except UnicodeDecodeError:
        raise _error(encoding, data, at, 2) from None


def _euc_jp(data: bytes) -> str:
    text: list[str] = []
    at = 0
    while at < len(data):
        lead = data[at]
        trail = data[at + 1] if at + 1 < len(data) else -1
        if lead < 0x80:
            text.append(chr(lead))
            at += 1
        elif lead == 0x8E and 0xA1 <= trail <= 0xDF:  # half-width katakana
            text.append(chr(0xFF61 - 0xA1 + trail))
            at += 2
        elif lead == 0x8F:  # JIS X 0212: browsers decode it but never send it
            text.append(_jis0212(data, at))
            at += 3
        elif 0xA1 <= lead <= 0xFE and 0xA1 <= trail <= 0xFE:
            text.append(_jis0208(EUC_JP, data, at, lead - 0xA1, trail - 0xA1))
            at += 2
        else:
            raise _error(EUC_JP, data, at)
    return "".join(text)


def _jis0212(data: bytes, at: int) -> str:
    sequence = data[at : at + 3]
    if sequence == b"\x8f\xa2\xb7":
        return "\uff5e"  # the one character of WHATWG's index jis0212 Python maps otherwise
    try:
        return sequence.decode("euc_jp")
    except UnicodeDecodeError:
        raise _error(EUC_JP, data, at, 3) from None


def _iso_2022_jp(data: bytes) -> str:
    # split() with the group keeps each escape's designation before the bytes it governs
    parts = _ISO_2022_JP_ESCAPE.split(data)
    text = [_iso_2022_jp_run(data, 0, b"(B", parts[0])]
    at = len(parts[0])
    for index in range(1, len(parts), 2):
        designation, run = parts[index], parts[index + 1]
        at += 1 + len(designation)
        if not run and index + 2 < len(parts):
            # Two escapes in a row: WHATWG refuses them (they could hide characters).
            raise _error(ISO_2022_JP, data, at)
        text.append(_iso_2022_jp_run(data, at, designation, run))
        at += len(run)
    return "".join(text)


def _iso_2022_jp_run(data: bytes, at: int, designation: bytes, run: bytes) -> str:
    if designation in (b"$@", b"$B"):  # JIS X 0208, two bytes 0x21-0x7E per character
        if len(run) % 2 or any(not 0x21 <= byte <= 0x7E for byte in run):
            raise _error(ISO_2022_JP, data, at, len(run))
        return "".join(
            _jis0208(ISO_2022_JP, data, at + i, run[i] - 0x21, run[i + 1] - 0x21)
            for i in range(0, len(run), 2)
        )
    if designation == b"(I":  # half-width katakana
        if any(not 0x21 <= byte <= 0x5F for byte in run):
            raise _error(ISO_2022_JP, data, at, len(run))
        return "".join(chr(0xFF61 - 0x21 + byte) for byte in run)
    if any(byte > 0x7F or byte in (0x0E, 0x0F, 0x1B) for byte in run):
        raise _error(ISO_2022_JP, data, at, len(run))
    text = run.decode("ascii")
    if designation == b"(J":  # JIS X 0201 Roman: yen sign and overline
        text = text.replace("\\", "\u00a5").replace("~", "\u203e")
    return text


def _error(encoding: str, data: bytes, at: int, length: int = 1) -> UnicodeDecodeError:
    return UnicodeDecodeError(encoding, data, at, at + max(length, 1), f"invalid {encoding}")


_DECODERS: dict[str, Callable[[bytes], str]] = {
    UTF_8: _utf_8,
    SHIFT_JIS: _shift_jis,
    EUC_JP: _euc_jp,
    ISO_2022_JP: _iso_2022_jp,
}
