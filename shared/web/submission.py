"""A form submission: the fields a lead form may send, validated and normalised.

Input is a multi-dict of strings (what urlencoded, multipart and JSON bodies all reduce
to). Unknown fields are dropped; every problem is reported against its field with a
code and a message in Japanese and English.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from shared.domain.leads import FormType
from shared.domain.normalize import (
    JAPAN,
    NormalisationError,
    clean_folded,
    clean_line,
    clean_text,
    email_key,
    is_checked,
    nfkc,
    normalize_phone,
    normalize_postcode,
    normalize_website,
    parse_local_time,
)
from shared.domain.prefectures import find_prefecture

# code -> (Japanese, English)
MESSAGES: dict[str, tuple[str, str]] = {
    "required": ("必須項目です。", "This field is required."),
    "invalid_email": (
        "メールアドレスの形式が正しくありません。",
        "Enter a valid email address.",
    ),
    "line_break": ("改行は入力できません。", "Line breaks are not allowed here."),
    "control_char": (
        "使用できない文字が含まれています。",
        "Contains characters that are not allowed.",
    ),
    "markup": ("HTMLタグは入力できません。", "HTML tags are not allowed."),
    "too_long": ("入力が長すぎます。", "This value is too long."),
    "too_many": ("選択数が多すぎます。", "Too many values."),
    "invalid_phone": ("電話番号の形式が正しくありません。", "Enter a valid phone number."),
    "invalid_choice": ("選択肢にない値です。", "This is not one of the choices."),
    "invalid_url": ("URLの形式が正しくありません。", "Enter a valid http(s) URL."),
    "invalid_postcode": (
        "郵便番号の形式が正しくありません（123-4567）。",
        "Enter a 7-digit postcode (123-4567).",
    ),
    "invalid_date": (
        "日付の形式が正しくありません（2026/10/15 または 2026-10-15 10:30）。",
        "Enter a date as 2026/10/15 or 2026-10-15 10:30.",
    ),
    "invalid_type": ("値の形式が正しくありません。", "This value has the wrong type."),
    "consent_required": (
        "メール配信への同意が必要です。",
        "Please agree to receive email from us.",
    ),
    "email_mismatch": (
        "確認用のメールアドレスが一致しません。",
        "The two email addresses do not match.",
    ),
}


# field -> (Japanese label, English label), for error pages
LABELS: dict[str, tuple[str, str]] = {
    "email": ("メールアドレス", "Email"),
    "email_confirmation": ("メールアドレス（確認用）", "Email (again)"),
    "name": ("お名前", "Name"),
    "family_name": ("姓", "Family name"),
    "given_name": ("名", "Given name"),
    "name_kana": ("フリガナ", "Name in kana"),
    "company": ("会社名", "Company"),
    "department": ("部署名", "Department"),
    "job_title": ("役職", "Job title"),
    "phone": ("電話番号", "Phone"),
    "phone_department": ("部署の電話番号", "Department phone"),
    "phone_direct": ("直通電話番号", "Direct phone"),
    "mobile": ("携帯電話番号", "Mobile"),
    "postcode": ("郵便番号", "Postcode"),
    "address": ("住所", "Address"),
    "website": ("WebサイトURL", "Website"),
    "industry": ("業種", "Industry"),
    "company_size": ("従業員数", "Company size"),
    "prefecture": ("都道府県", "Prefecture"),
    "country": ("国", "Country"),
    "interests": ("興味のある分野", "Interests"),
    "message": ("お問い合わせ内容", "Message"),
    "form_type": ("フォーム種別", "Form type"),
    "consent": ("メール配信への同意", "Email consent"),
    "sales_owner": ("営業担当者", "Sales owner"),
    "touched_at": ("名刺交換日・来場日時", "Date met"),
}


@dataclass(frozen=True)
class FieldError:
    field: str
    code: str

    @property
    def message_ja(self) -> str:
        return MESSAGES.get(self.code, MESSAGES["invalid_type"])[0]

    @property
    def message_en(self) -> str:
        return MESSAGES.get(self.code, MESSAGES["invalid_type"])[1]

    def as_dict(self) -> dict[str, str]:
        return {
            "field": self.field,
            "code": self.code,
            "message": self.message_ja,
            "message_en": self.message_en,
        }


class InvalidSubmission(Exception):
    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__(", ".join(f"{e.field}: {e.code}" for e in errors))
        self.errors = tuple(errors)


def _raising(check: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a NormalisationError into a pydantic error that keeps its code."""

    def run(value: str) -> Any:
        try:
            return check(value)
        except NormalisationError as exc:
            raise PydanticCustomError(exc.code, exc.code) from exc

    return run


def _line(max_length: int) -> AfterValidator:
    return AfterValidator(_raising(lambda v: clean_line(v, max_length)))


def _folded(max_length: int) -> AfterValidator:
    return AfterValidator(_raising(lambda v: clean_folded(v, max_length)))


def _check_email(value: str) -> str:
    value = nfkc(value).strip()
    if len(value) > 254:
        raise PydanticCustomError("too_long", "too_long")
    # Imported on the first address validated: the functions that import this module
    # for its errors and field names only (unsubscribe, visits) do not load it.
    from email_validator import EmailNotValidError, validate_email

    try:
        # No DNS lookups on a request path; SES bounces tell us the rest.
        result = validate_email(value, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as exc:
        raise PydanticCustomError("invalid_email", "invalid_email") from exc
    # Domain lower-cased (an internationalised one in Punycode, as SES needs 7-bit
    # addresses), local part as written.
    return result.ascii_email or result.normalized


def _check_url(value: str) -> str:
    value = clean_line(value, 2048)
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in value:
        raise NormalisationError("invalid_url")
    return value


def _in_utc(value: Any) -> Any:
    """A list's date (名刺交換日, 来場日時) in Japan unless it says otherwise, as UTC."""
    moment = parse_local_time(value) if isinstance(value, str) else value
    if not isinstance(moment, datetime):
        return value  # pydantic says what is wrong with it
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=JAPAN)
    return moment.astimezone(UTC)


def _check_locale(value: str) -> str:
    primary = nfkc(value).strip().lower().replace("_", "-").split("-")[0]
    return primary if primary in ("ja", "en") else "ja"


def _check_prefecture(value: str) -> str:
    value = clean_line(value, 40)
    known = find_prefecture(value)
    return known.name if known else value


def _split_interests(value: Any) -> Any:
    if isinstance(value, list):
        items = [part for v in value for part in nfkc(str(v)).replace("、", ",").split(",")]
        return [item for item in (i.strip() for i in items) if item]
    return value


def _at_most(limit: int) -> Callable[[tuple[str, ...]], tuple[str, ...]]:
    def check(values: tuple[str, ...]) -> tuple[str, ...]:
        if len(values) > limit:
            raise PydanticCustomError("too_many", "too_many")
        return tuple(dict.fromkeys(values))  # de-duplicated, order kept

    return check


Line50 = Annotated[str, _line(50)]
Line100 = Annotated[str, _line(100)]
Line200 = Annotated[str, _line(200)]
# Where a line break is layout, not meaning: a card's two-line address or department.
Folded100 = Annotated[str, _folded(100)]
Folded200 = Annotated[str, _folded(200)]
Email = Annotated[str, AfterValidator(_check_email)]
Url = Annotated[str, AfterValidator(_raising(_check_url))]
Phone = Annotated[str, AfterValidator(_raising(lambda v: normalize_phone(v)[0]))]
Postcode = Annotated[str, AfterValidator(_raising(normalize_postcode))]
Website = Annotated[str, AfterValidator(_raising(normalize_website))]
Moment = Annotated[datetime, BeforeValidator(_raising(_in_utc))]
Message = Annotated[str, AfterValidator(_raising(lambda v: clean_text(v, 4000)))]
Locale = Annotated[str, AfterValidator(_check_locale)]
PrefectureName = Annotated[str, AfterValidator(_raising(_check_prefecture))]
Interests = Annotated[
    tuple[Line50, ...], BeforeValidator(_split_interests), AfterValidator(_at_most(20))
]


class FormSubmission(BaseModel):
    """What one post of a lead form says, after normalisation."""

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    email: Email
    name: Line100 | None = None
    family_name: Line50 | None = None
    given_name: Line50 | None = None
    name_kana: Line100 | None = None
    company: Folded200 | None = None
    department: Folded200 | None = None
    job_title: Folded100 | None = None
    phone: Phone | None = None
    phone_department: Phone | None = None
    phone_direct: Phone | None = None
    mobile: Phone | None = None
    postcode: Postcode | None = None
    address: Folded200 | None = None
    website: Website | None = None
    industry: Line100 | None = None
    company_size: Line50 | None = None
    prefecture: PrefectureName | None = None
    country: Line100 | None = None
    interests: Interests = ()
    message: Message | None = None
    form_type: FormType = FormType.CONTACT
    form_id: Line100 | None = None
    asset: Line200 | None = None
    consent: bool = False
    consent_version: Line50 | None = None
    source: Line100 | None = None
    utm_source: Line200 | None = None
    utm_medium: Line200 | None = None
    utm_campaign: Line200 | None = None
    utm_term: Line200 | None = None
    utm_content: Line200 | None = None
    referrer: Url | None = None
    page_url: Url | None = None
    locale: Locale | None = None
    # Said by a list import only (LIST_ONLY: a web post's are dropped): whose card it is,
    # and when the list met the lead (名刺交換日, 来場日時).
    sales_owner: Line100 | None = None
    touched_at: Moment | None = None

    @property
    def phone_normalized(self) -> str | None:
        return normalize_phone(self.phone)[1] if self.phone else None

    @property
    def display_name(self) -> str | None:
        if self.name:
            return self.name
        parts = [p for p in (self.family_name, self.given_name) if p]
        return " ".join(parts) or None


# Other names that form builders commonly use for the same fields.
ALIASES: dict[str, str] = {
    "mail": "email",
    "email_address": "email",
    "full_name": "name",
    "last_name": "family_name",
    "first_name": "given_name",
    "sei": "family_name",
    "mei": "given_name",
    "organization": "company",
    "company_name": "company",
    "title": "job_title",
    "position": "job_title",
    "tel": "phone",
    "telephone": "phone",
    "pref": "prefecture",
    "lang": "locale",
    "type": "form_type",
    "whitepaper": "asset",
    "event": "asset",  # a registration form's seminar or webinar (events.yaml)
    "agree": "consent",
}
_MULTI = frozenset({"interests"})
# What a visitor must not set about themselves: only an operator's list says these.
LIST_ONLY = frozenset({"sales_owner", "touched_at"})
_FIELDS = frozenset(FormSubmission.model_fields) - LIST_ONLY
_LIST_FIELDS = frozenset(FormSubmission.model_fields)
_CHOICE_FIELDS = frozenset({"form_type"})

FormFields = Mapping[str, Sequence[str]]


def is_known_field(name: str) -> bool:
    return ALIASES.get(name, name) in _FIELDS


class FieldNames(Protocol):
    """What a website's own field names stand for (会社名, your-email, firstname): the
    list import's column dictionary (``shared.domain.lists``) answers for forms too."""

    @property
    def joined(self) -> frozenset[str]:
        """Fields whose parts a form may write in several fields (address, kana)."""
        ...

    def form_field(self, name: str) -> str | None:
        """The field ``name`` stands for, EMAIL_CONFIRMATION for a second address typed
        to confirm the first, None if unknown."""
        ...


# A form's second address field, typed again to confirm the first (メールアドレス（確認用）).
EMAIL_CONFIRMATION = "email_confirmation"
# Fields a form may split over boxes (tel1-tel2-tel3, zip1-zip2): the parts are joined.
_SPLIT_NUMBERS = frozenset({"phone", "phone_department", "phone_direct", "mobile", "postcode"})
_NUMBER_PART = re.compile(r"^[0-9０-９]{1,5}$")
_SPLIT_NUMBER_ERROR = dict.fromkeys(_SPLIT_NUMBERS, "invalid_phone") | {
    "postcode": "invalid_postcode"
}
# A form's name in two fields (name1, name2): family name, then given name.
_FORM_JOINED = frozenset({"name"})
# What a checkbox sends: a field named like a confirmation (mail_check) that holds one of
# these is a tick, not an address typed again.
_TICKS = frozenset({"0", "1", "on", "off", "true", "false", "yes", "no"})


def _field_of(raw_name: str, known: frozenset[str], names: FieldNames | None) -> str | None:
    name = ALIASES.get(raw_name, raw_name)
    if name in known:
        return name
    found = names.form_field(raw_name) if names is not None else None
    return found if found in known or found == EMAIL_CONFIRMATION else None


def _prepare(
    fields: FormFields, known: frozenset[str], names: FieldNames | None = None
) -> tuple[dict[str, Any], list[FieldError]]:
    """The fields by the name of what they hold, each field's values from every name
    that stands for it, in order; and what is wrong with how a form split them."""
    sources: dict[str, list[Sequence[str]]] = {}
    for raw_name, values in fields.items():
        name = _field_of(raw_name, known, names)
        if name is not None:
            sources.setdefault(name, []).append(values)
    data: dict[str, Any] = {}
    errors: list[FieldError] = []
    for name, found in sources.items():
        if name in _MULTI:
            data[name] = [v for values in found for v in values]
            continue
        if name == "consent":
            # A checkbox often follows a hidden "0" fallback: ticked if any value is.
            data[name] = any(is_checked(v) for values in found for v in values)
            continue
        firsts = [next((v.strip() for v in vs if v.strip()), "") for vs in found]
        filled = [v for v in firsts if v]
        if not filled:
            continue  # an empty optional field is the same as an absent one
        value = filled[0]
        if len(filled) > 1 and name in _SPLIT_NUMBERS:
            if all(_NUMBER_PART.match(part) for part in filled):
                value = "-".join(filled)
                if len(filled) < len(firsts):  # 090, (blank), 5678: not a number
                    errors.append(FieldError(name, _SPLIT_NUMBER_ERROR[name]))
        elif len(filled) > 1 and names is not None and name in names.joined | _FORM_JOINED:
            value = " ".join(filled)
        elif len(filled) > 1 and name == "email" and names is not None:
            data.setdefault(EMAIL_CONFIRMATION, filled[1])  # mail, mail2: typed twice
        if name == "form_type":
            value = nfkc(value).lower()
        data[name] = value
    return data, errors


def _confirms(data: Mapping[str, Any], email: str) -> bool:
    """True if the address typed to confirm is the one given (or none was typed)."""
    typed = data.get(EMAIL_CONFIRMATION)
    if typed is None or str(typed).strip().lower() in _TICKS:
        return True
    try:
        return email_key(_check_email(str(typed))) == email_key(email)
    except PydanticCustomError:
        return False


def _field_errors(exc: ValidationError) -> list[FieldError]:
    errors: list[FieldError] = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else "body"
        kind = error["type"]
        if kind == "missing":
            code = "required"
        elif kind == "enum" or field in _CHOICE_FIELDS:
            code = "invalid_choice"
        elif kind in MESSAGES:
            code = kind
        elif kind in ("string_too_long", "too_long"):
            code = "too_long"
        else:
            code = "invalid_type"
        if all(e.field != field for e in errors):
            errors.append(FieldError(field, code))
    return errors


def parse_submission(
    fields: FormFields,
    *,
    consent_required_for: Iterable[FormType] = (),
    listed: bool = False,
    names: FieldNames | None = None,
) -> FormSubmission:
    """Validate a form post (``listed``: a row of an operator's list, which may also say
    LIST_ONLY fields; ``names``: what else a website's field names may stand for); raise
    InvalidSubmission with every field's problem at once."""
    data, split = _prepare(fields, _LIST_FIELDS if listed else _FIELDS, names)
    errors: list[FieldError] = []
    submission: FormSubmission | None = None
    try:
        submission = FormSubmission.model_validate(data)
    except ValidationError as exc:
        errors = _field_errors(exc)
    errors += [e for e in split if all(e.field != f.field for f in errors)]
    if submission is not None and not _confirms(data, submission.email):
        errors.append(FieldError(EMAIL_CONFIRMATION, "email_mismatch"))
    form_type = submission.form_type if submission else _form_type_or_none(data)
    consent_given = bool(data.get("consent"))
    if form_type in set(consent_required_for) and not consent_given:
        errors.append(FieldError("consent", "consent_required"))
    if errors or submission is None:
        raise InvalidSubmission(errors)
    return submission


def _form_type_or_none(data: Mapping[str, Any]) -> FormType | None:
    try:
        return FormType(data.get("form_type", FormType.CONTACT))
    except ValueError:
        return None
