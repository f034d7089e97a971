"""Japan's 47 prefectures: canonical names, romaji and regions, for forms and segments."""

from __future__ import annotations

from typing import NamedTuple


class Prefecture(NamedTuple):
    name: str  # canonical Japanese name, e.g. 東京都
    romaji: str
    region: str  # 地方区分 used for routing to regional sales teams


PREFECTURES: tuple[Prefecture, ...] = (
    Prefecture("北海道", "Hokkaido", "北海道"),
    Prefecture("青森県", "Aomori", "東北"),
    Prefecture("岩手県", "Iwate", "東北"),
    Prefecture("宮城県", "Miyagi", "東北"),
    Prefecture("秋田県", "Akita", "東北"),
    Prefecture("山形県", "Yamagata", "東北"),
    Prefecture("福島県", "Fukushima", "東北"),
    Prefecture("茨城県", "Ibaraki", "関東"),
    Prefecture("栃木県", "Tochigi", "関東"),
    Prefecture("群馬県", "Gunma", "関東"),
    Prefecture("埼玉県", "Saitama", "関東"),
    Prefecture("千葉県", "Chiba", "関東"),
    Prefecture("東京都", "Tokyo", "関東"),
    Prefecture("神奈川県", "Kanagawa", "関東"),
    Prefecture("新潟県", "Niigata", "中部"),
    Prefecture("富山県", "Toyama", "中部"),
    Prefecture("石川県", "Ishikawa", "中部"),
    Prefecture("福井県", "Fukui", "中部"),
    Prefecture("山梨県", "Yamanashi", "中部"),
    Prefecture("長野県", "Nagano", "中部"),
    Prefecture("岐阜県", "Gifu", "中部"),
    Prefecture("静岡県", "Shizuoka", "中部"),
    Prefecture("愛知県", "Aichi", "中部"),
    Prefecture("三重県", "Mie", "近畿"),
    Prefecture("滋賀県", "Shiga", "近畿"),
    Prefecture("京都府", "Kyoto", "近畿"),
    Prefecture("大阪府", "Osaka", "近畿"),
    Prefecture("兵庫県", "Hyogo", "近畿"),
    Prefecture("奈良県", "Nara", "近畿"),
    Prefecture("和歌山県", "Wakayama", "近畿"),
    Prefecture("鳥取県", "Tottori", "中国"),
    Prefecture("島根県", "Shimane", "中国"),
    Prefecture("岡山県", "Okayama", "中国"),
    Prefecture("広島県", "Hiroshima", "中国"),
    Prefecture("山口県", "Yamaguchi", "中国"),
    Prefecture("徳島県", "Tokushima", "四国"),
    Prefecture("香川県", "Kagawa", "四国"),
    Prefecture("愛媛県", "Ehime", "四国"),
    Prefecture("高知県", "Kochi", "四国"),
    Prefecture("福岡県", "Fukuoka", "九州・沖縄"),
    Prefecture("佐賀県", "Saga", "九州・沖縄"),
    Prefecture("長崎県", "Nagasaki", "九州・沖縄"),
    Prefecture("熊本県", "Kumamoto", "九州・沖縄"),
    Prefecture("大分県", "Oita", "九州・沖縄"),
    Prefecture("宮崎県", "Miyazaki", "九州・沖縄"),
    Prefecture("鹿児島県", "Kagoshima", "九州・沖縄"),
    Prefecture("沖縄県", "Okinawa", "九州・沖縄"),
)


def _keys(p: Prefecture) -> tuple[str, ...]:
    bare = p.name if p.name == "北海道" else p.name[:-1]
    roman = p.romaji.lower()
    return (
        p.name,
        bare,
        roman,
        f"{roman}-ken",
        f"{roman} prefecture",
        f"{roman}-to",
        f"{roman}-fu",
    )


_LOOKUP: dict[str, Prefecture] = {key: p for p in PREFECTURES for key in _keys(p)}


def find_prefecture(text: str) -> Prefecture | None:
    """Recognise 東京, 東京都, Tokyo or tokyo-to as the same prefecture."""
    return _LOOKUP.get(text.strip().lower())


def prefecture_of_address(address: str) -> Prefecture | None:
    """The prefecture a Japanese address starts with (東京都千代田区… → 東京都)."""
    return next((p for p in PREFECTURES if address.startswith(p.name)), None)
