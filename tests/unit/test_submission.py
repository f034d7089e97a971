"""Validation of one form post (shared.web.submission.parse_submission) on multi-dicts."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import pytest

from shared.domain.leads import FormType
from shared.domain.lists import load_columns
from shared.web.submission import MESSAGES, FormSubmission, InvalidSubmission, parse_submission

EMAIL = "taro.yamada@example.co.jp"
# The forms that need an opt-in in the capture settings' default.
CONSENT_REQUIRED = (FormType.NEWSLETTER, FormType.DOWNLOAD, FormType.TRIAL)


def fields(**values: str | list[str]) -> dict[str, list[str]]:
    """A multi-dict as the body decoders produce it; email defaults to a valid one."""
    values.setdefault("email", EMAIL)
    return {k: [v] if isinstance(v, str) else v for k, v in values.items()}


def submit(
    consent_required_for: Iterable[FormType] = (), **values: str | list[str]
) -> FormSubmission:
    return parse_submission(fields(**values), consent_required_for=consent_required_for)


def errors_of(
    consent_required_for: Iterable[FormType] = (), **values: str | list[str]
) -> dict[str, str]:
    with pytest.raises(InvalidSubmission) as caught:
        submit(consent_required_for, **values)
    return {e.field: e.code for e in caught.value.errors}


# -- email ------------------------------------------------------------------------------


@pytest.mark.parametrize("blank", [[], [""], ["   "]], ids=["no value", "empty", "spaces"])
def test_email_is_required(blank: list[str]) -> None:
    assert errors_of(email=blank) == {"email": "required"}


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        pytest.param("Taro.Yamada@EXAMPLE.Co.JP", "Taro.Yamada@example.co.jp", id="domain lowered"),
        pytest.param("  taro@example.co.jp  ", "taro@example.co.jp", id="trimmed"),
        pytest.param("ｔａｒｏ＠ｅｘａｍｐｌｅ．ｃｏ．ｊｐ", "taro@example.co.jp", id="full-width"),
        pytest.param("taro+news@example.co.jp", "taro+news@example.co.jp", id="plus tag"),
    ],
)
def test_the_email_domain_is_lower_cased_and_the_local_part_kept(typed: str, stored: str) -> None:
    assert submit(email=typed).email == stored


@pytest.mark.parametrize(
    ("typed", "code"),
    [
        ("taro", "invalid_email"),
        ("taro@", "invalid_email"),
        ("@example.co.jp", "invalid_email"),
        ("taro@@example.co.jp", "invalid_email"),
        ("taro@example", "invalid_email"),
        ("taro yamada@example.co.jp", "invalid_email"),
        ("taro@example..co.jp", "invalid_email"),
        ("山田 <taro@example.co.jp>", "invalid_email"),
        ("<script>@example.co.jp", "invalid_email"),
        ("taro@example.co.jp\r\nBcc: x@evil.com", "invalid_email"),
        ("a" * 250 + "@example.co.jp", "too_long"),
    ],
)
def test_an_invalid_email_is_a_field_error(typed: str, code: str) -> None:
    assert errors_of(email=typed) == {"email": code}


# -- field names ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("alias", "field", "typed", "stored"),
    [
        ("mail", "email", "jiro@example.co.jp", "jiro@example.co.jp"),
        ("full_name", "name", "山田 太郎", "山田 太郎"),
        ("last_name", "family_name", "山田", "山田"),
        ("first_name", "given_name", "太郎", "太郎"),
        ("sei", "family_name", "山田", "山田"),
        ("mei", "given_name", "太郎", "太郎"),
        ("organization", "company", "サンプル株式会社", "サンプル株式会社"),
        ("company_name", "company", "サンプル株式会社", "サンプル株式会社"),
        ("title", "job_title", "部長", "部長"),
        ("position", "job_title", "部長", "部長"),
        ("tel", "phone", "03-1234-5678", "03-1234-5678"),
        ("telephone", "phone", "03-1234-5678", "03-1234-5678"),
        ("pref", "prefecture", "大阪", "大阪府"),
        ("lang", "locale", "en-US", "en"),
        ("type", "form_type", "download", FormType.DOWNLOAD),
        ("whitepaper", "asset", "dx-guide-2026.pdf", "dx-guide-2026.pdf"),
        ("agree", "consent", "on", True),
    ],
)
def test_form_builder_aliases_fill_the_same_fields(
    alias: str, field: str, typed: str, stored: object
) -> None:
    values = {alias: typed} if alias != "mail" else {"email": [], alias: typed}

    assert getattr(submit(**values), field) == stored


def test_unknown_fields_are_ignored_not_validated_and_not_kept() -> None:
    submission = submit(
        favourite_colour="<script>alert(1)</script>",
        thanks_url="https://www.example.co.jp/thanks",
        homepage="\x00",
    )

    dumped = submission.model_dump()
    assert not {"favourite_colour", "thanks_url", "homepage"} & set(dumped)


def test_an_empty_optional_field_is_the_same_as_an_absent_one() -> None:
    submission = submit(company="", phone="  ", name=["", "山田 太郎"])

    assert (submission.company, submission.phone, submission.name) == (None, None, "山田 太郎")


def test_fields_are_normalised_like_single_lines() -> None:
    submission = submit(company="　ＡＢＣ　　株式会社 ", family_name="山田", given_name="太郎")

    assert submission.company == "ABC 株式会社"
    assert submission.display_name == "山田 太郎"


def test_a_phone_is_kept_as_written_with_its_e164_form() -> None:
    submission = submit(phone="０３－１２３４－５６７８")

    assert (submission.phone, submission.phone_normalized) == ("03-1234-5678", "+81312345678")


def test_a_message_keeps_its_lines() -> None:
    assert submit(message="一行目\r\n二行目").message == "一行目\n二行目"


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "ftp://example.co.jp/", "/relative", "https://"]
)
def test_a_referrer_must_be_an_http_url(url: str) -> None:
    assert errors_of(referrer=url) == {"referrer": "invalid_url"}


# -- interests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        pytest.param(["AI", "IoT"], ("AI", "IoT"), id="repeated fields"),
        pytest.param("AI,IoT, クラウド", ("AI", "IoT", "クラウド"), id="comma separated"),
        pytest.param("AI、IoT、クラウド", ("AI", "IoT", "クラウド"), id="読点 separated"),
        pytest.param(["AI,IoT", "クラウド"], ("AI", "IoT", "クラウド"), id="both"),
        pytest.param(["AI", "IoT", "AI"], ("AI", "IoT"), id="de-duplicated in order"),
        pytest.param(["ＡＩ", "AI"], ("AI",), id="de-duplicated after NFKC"),
        pytest.param("AI,, ,IoT", ("AI", "IoT"), id="blank items dropped"),
        pytest.param(
            "ＡＩ，ＩｏＴ",
            ("AI", "IoT"),
            id="full-width comma",
        ),
    ],
)
def test_interests_come_from_repeated_and_separated_values(
    typed: str | list[str], stored: tuple[str, ...]
) -> None:
    assert submit(interests=typed).interests == stored


def test_at_most_twenty_interests() -> None:
    twenty = [f"topic{i}" for i in range(20)]

    assert len(submit(interests=twenty).interests) == 20
    assert errors_of(interests=[*twenty, "one more"]) == {"interests": "too_many"}


def test_an_interest_with_markup_is_an_error_on_interests() -> None:
    assert errors_of(interests=["AI", "<b>IoT</b>"]) == {"interests": "markup"}


# -- prefecture, locale, form type --------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("東京", "東京都"),
        ("東京都", "東京都"),
        ("Tokyo", "東京都"),
        ("TOKYO", "東京都"),
        ("ＴＯＫＹＯ", "東京都"),
        ("tokyo-to", "東京都"),
        ("大阪", "大阪府"),
        ("hokkaido", "北海道"),
        ("California", "California"),
    ],
)
def test_a_prefecture_is_recognised_by_any_common_spelling(typed: str, stored: str) -> None:
    assert submit(prefecture=typed).prefecture == stored


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ja-JP", "ja"),
        ("ja_JP", "ja"),
        ("ja", "ja"),
        ("en-US", "en"),
        ("EN", "en"),
        ("fr-FR", "ja"),
        ("zz", "ja"),
    ],
)
def test_locale_is_japanese_or_english_and_japanese_when_unknown(typed: str, stored: str) -> None:
    assert submit(locale=typed).locale == stored


@pytest.mark.parametrize("form_type", list(FormType))
def test_every_form_type_is_accepted(form_type: FormType) -> None:
    assert submit(form_type=form_type.value, consent="1").form_type is form_type


def test_a_post_without_form_type_is_a_contact() -> None:
    assert submit().form_type is FormType.CONTACT


@pytest.mark.parametrize("typed", ["INQUIRY", " inquiry ", "ｉｎｑｕｉｒｙ"])
def test_form_type_is_read_whatever_its_case_width_or_padding(typed: str) -> None:
    assert submit(form_type=typed).form_type is FormType.INQUIRY


@pytest.mark.parametrize("typed", ["spam", "問い合わせ"])
def test_an_unknown_form_type_is_an_invalid_choice(typed: str) -> None:
    assert errors_of(form_type=typed) == {"form_type": "invalid_choice"}


# -- consent -----------------------------------------------------------------------------


@pytest.mark.parametrize("form_type", list(FormType))
def test_consent_is_required_for_the_configured_form_types_only(form_type: FormType) -> None:
    if form_type in CONSENT_REQUIRED:
        assert errors_of(CONSENT_REQUIRED, form_type=form_type.value) == {
            "consent": "consent_required"
        }
    else:
        assert submit(CONSENT_REQUIRED, form_type=form_type.value).consent is False


@pytest.mark.parametrize("unticked", ["0", "false", "off"])
def test_an_unticked_consent_is_no_consent(unticked: str) -> None:
    assert errors_of(CONSENT_REQUIRED, form_type="newsletter", consent=unticked) == {
        "consent": "consent_required"
    }


def test_a_ticked_consent_satisfies_a_form_that_requires_it() -> None:
    assert submit(CONSENT_REQUIRED, form_type="newsletter", consent="on").consent is True


def test_an_unknown_form_type_does_not_also_demand_consent() -> None:
    assert errors_of(CONSENT_REQUIRED, form_type="spam") == {"form_type": "invalid_choice"}


# -- errors ------------------------------------------------------------------------------


def test_every_problem_is_reported_at_once_with_japanese_and_english_messages() -> None:
    with pytest.raises(InvalidSubmission) as caught:
        submit(
            CONSENT_REQUIRED,
            email="taro@",
            name="山田\r\n太郎",
            company="<script>alert(1)</script>",
            phone="abc",
            form_type="newsletter",
        )

    errors = {e.field: e.as_dict() for e in caught.value.errors}
    assert {field: e["code"] for field, e in errors.items()} == {
        "email": "invalid_email",
        "name": "line_break",
        "company": "markup",
        "phone": "invalid_phone",
        "consent": "consent_required",
    }
    for error in errors.values():
        assert (error["message"], error["message_en"]) == MESSAGES[error["code"]]
    assert errors["email"]["message"] == "メールアドレスの形式が正しくありません。"
    assert errors["email"]["message_en"] == "Enter a valid email address."


def test_one_field_is_reported_once_even_when_several_of_its_values_are_wrong() -> None:
    with pytest.raises(InvalidSubmission) as caught:
        submit(interests=["<b>a</b>", "<i>b</i>"])

    assert [e.field for e in caught.value.errors] == ["interests"]


# -- contact details and what only a list says -------------------------------------------------


def test_contact_details_from_a_card_are_normalised() -> None:
    post = submit(
        postcode="〒１００－０００５",
        address="東京都千代田区丸の内１－１－１　丸の内ビル",
        website="www.example.co.jp",
        phone_direct="０３－１２３４－５６００",
        phone_department="03-1234-5601",
        mobile="090 1234 5678",
        name_kana="ﾔﾏﾀﾞ ﾀﾛｳ",
    )

    assert (post.postcode, post.address) == ("100-0005", "東京都千代田区丸の内1-1-1 丸の内ビル")
    assert post.website == "https://www.example.co.jp"
    assert (post.phone_direct, post.phone_department, post.mobile) == (
        "03-1234-5600",
        "03-1234-5601",
        "090 1234 5678",
    )
    assert post.name_kana == "ヤマダ タロウ"


def test_contact_details_that_are_not_ones_are_field_errors() -> None:
    assert errors_of(postcode="123-45", website="javascript:alert(1)", mobile="携帯なし") == {
        "postcode": "invalid_postcode",
        "website": "invalid_url",
        "mobile": "invalid_phone",
    }


def test_a_web_post_cannot_name_its_sales_owner_or_when_it_was_met() -> None:
    post = submit(sales_owner="営業部長", touched_at="2020-01-01")

    assert (post.sales_owner, post.touched_at) == (None, None)


def test_a_list_row_names_its_sales_owner_and_when_the_lead_was_met() -> None:
    post = parse_submission(
        fields(sales_owner="佐藤　健一", touched_at="2026/10/15 9:30"), listed=True
    )

    assert post.sales_owner == "佐藤 健一"
    assert post.touched_at == datetime(2026, 10, 15, 0, 30, tzinfo=UTC)


def test_a_list_row_with_a_date_that_is_not_one_is_a_field_error() -> None:
    with pytest.raises(InvalidSubmission) as caught:
        parse_submission(fields(touched_at="2026/02/30"), listed=True)

    (error,) = caught.value.errors
    assert (error.field, error.code) == ("touched_at", "invalid_date")
    assert error.message_ja.startswith("日付の形式が正しくありません")


# -- a website's own field names (the column dictionary) ------------------------------------


def posted(*pairs: tuple[str, str]) -> FormSubmission:
    """A post whose fields are named as the website names them, read through the shipped
    column dictionary."""
    form: dict[str, list[str]] = {}
    for name, value in pairs:
        form.setdefault(name, []).append(value)
    return parse_submission(form, names=load_columns())


def posted_errors(*pairs: tuple[str, str]) -> dict[str, str]:
    with pytest.raises(InvalidSubmission) as caught:
        posted(*pairs)
    return {e.field: e.code for e in caught.value.errors}


def test_a_form_with_japanese_field_names_is_read_as_the_lead_it_describes() -> None:
    post = posted(
        ("会社名", "株式会社サンプル"),
        ("お名前", "山田 太郎"),
        ("メールアドレス", EMAIL),
        ("電話番号", "03-1234-5678"),
        ("お問い合わせ内容", "資料を送ってください。"),
    )

    assert (post.company, post.name, post.email) == ("株式会社サンプル", "山田 太郎", EMAIL)
    assert (post.phone, post.message) == ("03-1234-5678", "資料を送ってください。")


def test_contact_form_7_and_hubspot_names_are_read() -> None:
    cf7 = posted(("your-name", "山田 太郎"), ("your-email", EMAIL), ("your-message", "見積依頼"))
    hubspot = posted(
        ("firstname", "Taro"),
        ("lastname", "Yamada"),
        ("email", EMAIL),
        ("jobtitle", "部長"),
        ("numemployees", "100-299"),
        ("state", "東京"),
    )

    assert (cf7.name, cf7.email, cf7.message) == ("山田 太郎", EMAIL, "見積依頼")
    assert (hubspot.given_name, hubspot.family_name, hubspot.job_title) == (
        "Taro",
        "Yamada",
        "部長",
    )
    assert (hubspot.company_size, hubspot.prefecture) == ("100-299", "東京都")


def test_a_number_split_over_boxes_is_joined() -> None:
    post = posted(
        ("email", EMAIL),
        ("tel1", "03"),
        ("tel2", "1234"),
        ("tel3", "5678"),
        ("zip1", "100"),
        ("zip2", "0005"),
    )

    assert (post.phone, post.phone_normalized, post.postcode) == (
        "03-1234-5678",
        "+81312345678",
        "100-0005",
    )


@pytest.mark.parametrize(
    ("parts", "field", "code"),
    [
        pytest.param(("090", "", "5678"), "mobile", "invalid_phone", id="携帯電話, middle blank"),
        pytest.param(("03", "1234", ""), "phone", "invalid_phone", id="電話番号, last blank"),
    ],
)
def test_a_number_with_a_box_left_blank_is_refused_not_shortened(
    parts: tuple[str, ...], field: str, code: str
) -> None:
    label = {"mobile": "携帯電話", "phone": "電話番号"}[field]
    boxes = [(f"{label}{i}", part) for i, part in enumerate(parts, start=1)]

    assert posted_errors(("email", EMAIL), *boxes) == {field: code}


def test_a_postcode_with_a_box_left_blank_is_refused() -> None:
    assert posted_errors(("email", EMAIL), ("zip1", "100"), ("zip2", "")) == {
        "postcode": "invalid_postcode"
    }


def test_a_name_in_two_fields_is_joined_and_japanese_split_names_are_read() -> None:
    two = posted(("email", EMAIL), ("name1", "山田"), ("name2", "太郎"))
    split = posted(
        ("email", EMAIL),
        ("お名前（姓）", "山田"),
        ("お名前（名）", "太郎"),
        ("フリガナ（セイ）", "ヤマダ"),
        ("フリガナ（メイ）", "タロウ"),
    )

    assert two.name == "山田 太郎"
    assert (split.family_name, split.given_name, split.name_kana) == (
        "山田",
        "太郎",
        "ヤマダ タロウ",
    )


def test_an_address_written_in_parts_is_joined_in_the_forms_order() -> None:
    post = posted(
        ("email", EMAIL),
        ("都道府県", "東京都"),
        ("市区町村", "千代田区"),
        ("番地", "丸の内1-1-1"),
        ("建物名", "丸の内ビル5F"),
    )

    assert (post.prefecture, post.address) == ("東京都", "千代田区 丸の内1-1-1 丸の内ビル5F")


@pytest.mark.parametrize(
    ("first", "again"),
    [
        pytest.param("メールアドレス", "メールアドレス（確認用）", id="確認用"),
        pytest.param("email", "email_confirm", id="email_confirm"),
        pytest.param("email", "confirm-email", id="confirm-email"),
        pytest.param("mail", "mail2", id="mail2"),
    ],
)
def test_an_address_typed_twice_must_be_the_same(first: str, again: str) -> None:
    same = posted((first, EMAIL), (again, "Taro.Yamada@EXAMPLE.co.jp"))  # the domain's case
    assert same.email == EMAIL

    assert posted_errors((first, EMAIL), (again, "taro.yamda@example.co.jp")) == {
        "email_confirmation": "email_mismatch"
    }
    assert posted_errors((first, EMAIL), (again, "not an address")) == {
        "email_confirmation": "email_mismatch"
    }
    assert MESSAGES["email_mismatch"][0] == "確認用のメールアドレスが一致しません。"


def test_a_checkbox_named_like_a_confirmation_is_not_an_address() -> None:
    # mail_check: "send me a copy", ticked
    assert posted(("email", EMAIL), ("mail_check", "1")).email == EMAIL


def test_a_website_cannot_set_what_only_a_list_says_whatever_it_names_it() -> None:
    post = posted(("email", EMAIL), ("営業担当", "鈴木"), ("名刺交換日", "2026/11/01"))

    assert (post.sales_owner, post.touched_at) == (None, None)


def test_without_the_dictionary_only_the_documented_names_are_read() -> None:
    post = parse_submission({"email": [EMAIL], "会社名": ["株式会社サンプル"], "tel1": ["03"]})

    assert (post.company, post.phone) == (None, None)
