"""Form posts from legacy Japanese pages, byte for byte as Chromium sends them.

Captured from Chromium 156 submitting one form from pages served as Shift_JIS, EUC-JP
and ISO-2022-JP, as a plain post (urlencoded) and with ``enctype=multipart/form-data``.
The form has the hidden ``_charset_`` input the browser fills with the page's encoding
and a field with a Japanese name, and the visitor typed ``TYPED``: 髙 and 﨑 exist only
in the Windows extensions of Shift_JIS (cp932), ① only in its NEC row, and the
half-width katakana are single bytes in Shift_JIS, two in EUC-JP and turned full-width
(with a separate voiced mark) by the ISO-2022-JP encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

TYPED = {
    "email": "takahashi@example.co.jp",
    "family_name": "髙橋",
    "given_name": "一郎",
    "company": "株式会社山﨑製作所",
    "department": "ﾏｰｹﾃｨﾝｸﾞ部",
    "message": "①の資料を希望します～",
    "備考": "なし",
}

SHIFT_JIS_URLENCODED = (
    b"_charset_=Shift_JIS&"
    b"email=takahashi%40example.co.jp&"
    b"family_name=%FB%FC%8B%B4&"
    b"given_name=%88%EA%98Y&"
    b"company=%8A%94%8E%AE%89%EF%8E%D0%8ER%FA%B1%90%BB%8D%EC%8F%8A&"
    b"department=%CF%B0%B9%C3%A8%DD%B8%DE%95%94&"
    b"message=%87%40%82%CC%8E%91%97%BF%82%F0%8A%F3%96%5D%82%B5%82%DC%82%B7%81%60&"
    b"%94%F5%8Dl=%82%C8%82%B5"
)

SHIFT_JIS_BOUNDARY = "----WebKitFormBoundaryoYgPcrkTtmprJ7Qr"
SHIFT_JIS_MULTIPART = (
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="_charset_"\r\n\r\n'
    b"Shift_JIS\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="email"\r\n\r\n'
    b"takahashi@example.co.jp\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="family_name"\r\n\r\n'
    b"\xfb\xfc\x8b\xb4\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="given_name"\r\n\r\n'
    b"\x88\xea\x98Y\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="company"\r\n\r\n'
    b"\x8a\x94\x8e\xae\x89\xef\x8e\xd0\x8eR\xfa\xb1\x90\xbb\x8d\xec\x8f\x8a\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="department"\r\n\r\n'
    b"\xcf\xb0\xb9\xc3\xa8\xdd\xb8\xde\x95\x94\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="message"\r\n\r\n'
    b"\x87@\x82\xcc\x8e\x91\x97\xbf\x82\xf0\x8a\xf3\x96]\x82\xb5\x82\xdc\x82\xb7\x81`\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr\r\n"
    b'Content-Disposition: form-data; name="\x94\xf5\x8dl"\r\n\r\n'
    b"\x82\xc8\x82\xb5\r\n"
    b"------WebKitFormBoundaryoYgPcrkTtmprJ7Qr--\r\n"
)

EUC_JP_URLENCODED = (
    b"_charset_=EUC-JP&"
    b"email=takahashi%40example.co.jp&"
    b"family_name=%FC%E2%B6%B6&"
    b"given_name=%B0%EC%CF%BA&"
    b"company=%B3%F4%BC%B0%B2%F1%BC%D2%BB%B3%F9%F5%C0%BD%BA%EE%BD%EA&"
    b"department=%8E%CF%8E%B0%8E%B9%8E%C3%8E%A8%8E%DD%8E%B8%8E%DE%C9%F4&"
    b"message=%AD%A1%A4%CE%BB%F1%CE%C1%A4%F2%B4%F5%CB%BE%A4%B7%A4%DE%A4%B9%A1%C1&"
    b"%C8%F7%B9%CD=%A4%CA%A4%B7"
)

EUC_JP_BOUNDARY = "----WebKitFormBoundary8A47AThrKopLw9v4"
EUC_JP_MULTIPART = (
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="_charset_"\r\n\r\n'
    b"EUC-JP\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="email"\r\n\r\n'
    b"takahashi@example.co.jp\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="family_name"\r\n\r\n'
    b"\xfc\xe2\xb6\xb6\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="given_name"\r\n\r\n'
    b"\xb0\xec\xcf\xba\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="company"\r\n\r\n'
    b"\xb3\xf4\xbc\xb0\xb2\xf1\xbc\xd2\xbb\xb3\xf9\xf5\xc0\xbd\xba\xee\xbd\xea\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="department"\r\n\r\n'
    b"\x8e\xcf\x8e\xb0\x8e\xb9\x8e\xc3\x8e\xa8\x8e\xdd\x8e\xb8\x8e\xde\xc9\xf4\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="message"\r\n\r\n'
    b"\xad\xa1\xa4\xce\xbb\xf1\xce\xc1\xa4\xf2\xb4\xf5"
    b"\xcb\xbe\xa4\xb7\xa4\xde\xa4\xb9\xa1\xc1\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4\r\n"
    b'Content-Disposition: form-data; name="\xc8\xf7\xb9\xcd"\r\n\r\n'
    b"\xa4\xca\xa4\xb7\r\n"
    b"------WebKitFormBoundary8A47AThrKopLw9v4--\r\n"
)

ISO_2022_JP_URLENCODED = (
    b"_charset_=ISO-2022-JP&"
    b"email=takahashi%40example.co.jp&"
    b"family_name=%1B%24B%7Cb66%1B%28B&"
    b"given_name=%1B%24B0lO%3A%1B%28B&"
    b"company=%1B%24B3t%3C02q%3CR%3B3yu%40%3D%3An%3Dj%1B%28B&"
    b"department=%1B%24B%25%5E%21%3C%251%25F%25%23%25s%25%2F%21%2BIt%1B%28B&"
    b"message=%1B%24B-%21%24N%3BqNA%24r4uK%3E%247%24%5E%249%21A%1B%28B&"
    b"%1B%24BHw9M%1B%28B=%1B%24B%24J%247%1B%28B"
)

ISO_2022_JP_BOUNDARY = "----WebKitFormBoundaryRkZ6SVjpubr3rb4Z"
ISO_2022_JP_MULTIPART = (
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="_charset_"\r\n\r\n'
    b"ISO-2022-JP\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="email"\r\n\r\n'
    b"takahashi@example.co.jp\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="family_name"\r\n\r\n'
    b"\x1b$B|b66\x1b(B\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="given_name"\r\n\r\n'
    b"\x1b$B0lO:\x1b(B\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="company"\r\n\r\n'
    b"\x1b$B3t<02q<R;3yu@=:n=j\x1b(B\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="department"\r\n\r\n'
    b"\x1b$B%^!<%1%F%#%s%/!+It\x1b(B\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="message"\r\n\r\n'
    b"\x1b$B-!$N;qNA$r4uK>$7$^$9!A\x1b(B\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z\r\n"
    b'Content-Disposition: form-data; name="\x1b$BHw9M\x1b(B"\r\n\r\n'
    b"\x1b$B$J$7\x1b(B\r\n"
    b"------WebKitFormBoundaryRkZ6SVjpubr3rb4Z--\r\n"
)


@dataclass(frozen=True)
class LegacyForm:
    encoding: str  # what the browser put in ``_charset_``
    urlencoded: bytes
    multipart: bytes
    boundary: str
    department: str  # as the encoding could carry what was typed

    @property
    def multipart_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def fields(self) -> dict[str, list[str]]:
        """What decoding either body must give."""
        typed = {**TYPED, "department": self.department}
        return {"_charset_": [self.encoding], **{k: [v] for k, v in typed.items()}}


SHIFT_JIS = LegacyForm(
    "Shift_JIS", SHIFT_JIS_URLENCODED, SHIFT_JIS_MULTIPART, SHIFT_JIS_BOUNDARY, "ﾏｰｹﾃｨﾝｸﾞ部"
)
EUC_JP = LegacyForm("EUC-JP", EUC_JP_URLENCODED, EUC_JP_MULTIPART, EUC_JP_BOUNDARY, "ﾏｰｹﾃｨﾝｸﾞ部")
ISO_2022_JP = LegacyForm(
    "ISO-2022-JP",
    ISO_2022_JP_URLENCODED,
    ISO_2022_JP_MULTIPART,
    ISO_2022_JP_BOUNDARY,
    "マーケティンク\u309b部",
)
LEGACY_FORMS = (SHIFT_JIS, EUC_JP, ISO_2022_JP)
