"""The local console in headless Chromium, against the local stack in a subprocess.

A visitor fills the sample site's forms, the clock moves to a sending window, the
welcome email shows up in the outbox, opening it and clicking its link go through the
real engagement path (SNS, engagement queue, poller, function) onto the lead's
timeline, an inquiry reaches the sales inbox, a seminar registrant who reads the
nurture emails over several days (the clock moved from the console's header) is
handed to sales as an MQL, and the email's one-click unsubscribe opts the lead out.
A form on a legacy page served as Shift_JIS reaches the lead in Japanese, as typed.

Every console page is shown at 1366 by 768 pixels (a common office laptop), must fit its
width, and is kept as a screenshot (``build/screenshots/console-<page>.png``).

Chromium is Debian's package (``playwright install`` cannot download browsers here), with
Debian's fonts-noto-cjk so that Japanese renders: when either is missing and we are
root they are installed once; otherwise the tests fail.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from tests.e2e.test_local_stack import (
    Stack,
    eventually,
    local_stack,
    next_send_time,
    request,
    signed_request,
)

pytestmark = [pytest.mark.browser, pytest.mark.e2e]

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
SCREEN = {"width": 1366, "height": 768}
JST = ZoneInfo("Asia/Tokyo")
# A person's browser: headless Chromium names itself "HeadlessChrome", which the visits
# endpoint rightly takes for a mail scanner's (shared/content/engagement.yaml). Set for the
# whole browser, as a context's user agent does not reach navigator.sendBeacon.
READER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
CHROMIUM_ARGS = [
    f"--user-agent={READER_AGENT}",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
INSTALL_TIMEOUT_S = 900
# A deadline for mail and hand-offs crossing the stack's queues and streams, not a speed
# figure: the wait ends as soon as they arrive, and CI's two loaded cores need the room.
ARRIVAL_TIMEOUT_S = 45
PAGE_TIMEOUT_MS = 10_000
# How long one clock step's emails may take through the send queue before the next step.
MAIL_WAIT_S = 8
MAX_DAYS_PER_EMAIL = 10
MAX_EMAILS_TO_MQL = 5
# Links a reader would follow: tagged content links (not the footer's unsubscribe).
# What a reader can click: the hidden trap link (for scanners) is not visible.
CONTENT_LINKS = "a[href*='/click?'][href*='tag=link']:visible"


def japanese_font() -> bool:
    """A font with Japanese glyphs (Debian's fonts-noto-cjk): without one, screenshots of
    the console show boxes where the Japanese text is."""
    try:
        found = subprocess.run(
            ["fc-list", ":lang=ja", "family"],  # noqa: S607 - fontconfig's tool
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return bool(found.stdout.strip())


def _install_chromium() -> None:
    """``apt-get update && apt-get install -y chromium fonts-noto-cjk``, once across xdist
    workers."""
    if os.geteuid() != 0:
        pytest.fail(
            f"{CHROMIUM} is missing and this user cannot install it: "
            "run `apt-get update && apt-get install -y chromium` as root"
        )
    lock = Path(tempfile.gettempdir()) / "lead-nurture-chromium-install.lock"
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        if CHROMIUM.exists() and japanese_font():
            return  # another worker installed them meanwhile
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "chromium", "fonts-noto-cjk"]
        for command in (["apt-get", "update"], install):
            try:
                done = subprocess.run(  # noqa: S603 - fixed command
                    command, capture_output=True, text=True, env=env, timeout=INSTALL_TIMEOUT_S
                )
            except (OSError, subprocess.TimeoutExpired) as error:
                pytest.fail(f"`{' '.join(command)}` could not run: {error}")
            if done.returncode != 0:
                pytest.fail(
                    f"`{' '.join(command)}` failed ({done.returncode}); Chromium is needed "
                    f"for the browser tests:\n{done.stderr[-3000:]}"
                )


@pytest.fixture(scope="session")
def chromium() -> str:
    if not CHROMIUM.exists() or not japanese_font():
        _install_chromium()
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is still missing after installing the chromium package")
    return str(CHROMIUM)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    log = tmp_path_factory.mktemp("console-stack") / "stack.log"
    with local_stack(log, "--tick-seconds", "2") as running:
        yield running


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(locale="ja-JP")
    context.set_default_timeout(PAGE_TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


def shows(page: Page, url: str, selector: str, what: str) -> None:
    """Reload ``url`` until ``selector`` matches something, or fail after the deadline."""

    def probe() -> bool | None:
        page.goto(url)
        return True if page.locator(selector).count() else None

    eventually(probe, what, ARRIVAL_TIMEOUT_S)


def test_an_inquiry_posted_from_the_site_reaches_the_sales_inbox_as_an_mql(
    stack: Stack, page: Page
) -> None:
    console = f"{stack.origin}/console"
    email = f"inquiry-{uuid.uuid4().hex[:8]}@example.co.jp"
    company = f"ブラウザ試験{uuid.uuid4().hex[:6]}株式会社"

    # Given the sample site's inquiry form, posted as a plain HTML form
    page.goto(f"{console}/site")
    form = page.locator("#inquiry-form")
    form.locator("[name=family_name]").fill("山田")
    form.locator("[name=given_name]").fill("太郎")
    form.locator("[name=email]").fill(email)
    form.locator("[name=company]").fill(company)
    form.locator("[name=company_size]").select_option("300-999")
    form.locator("[name=message]").fill("見積もりをお願いします。")
    form.locator("[name=consent]").check()
    form.locator("button[type=submit]").click()

    # Then the API redirects the browser to the console's thank-you page
    page.wait_for_url(f"{console}/site/thanks")
    assert "送信ありがとうございました" in page.locator("#thanks").inner_text()

    # and the lead, an MQL at once (high intent), is handed to sales
    shows(page, f"{console}/sales", f".sales-message:has-text('{company}')", "the MQL in the inbox")
    message = page.locator(f".sales-message:has-text('{company}')").first
    assert message.locator(".subject").inner_text().startswith("[MQL]")
    assert email in message.locator("pre.body").inner_text()

    # and the leads list and the funnel count it
    page.goto(f"{console}/leads")
    row = page.locator(f"#leads tr:has-text('{email}')")
    assert row.locator(".stage").inner_text().lower() == "mql"
    page.goto(f"{console}/funnel")
    assert page.locator("#funnel-chart rect").count() == 4
    assert page.locator("#funnel tr:has-text('MQL') td").nth(1).inner_text() != "0"


def test_the_welcome_email_is_opened_clicked_and_unsubscribed_from_the_outbox(
    stack: Stack, page: Page
) -> None:
    console = f"{stack.origin}/console"
    email = f"download-{uuid.uuid4().hex[:8]}@example.co.jp"

    # Given a whitepaper download posted with fetch + FormData, answered in JSON inline
    page.goto(f"{console}/site")
    form = page.locator("#download-form")
    form.locator("[name=name]").fill("佐藤 花子")
    form.locator("[name=email]").fill(email)
    form.locator("[name=consent]").check()
    form.locator("button[type=submit]").click()
    result = page.locator("#download-result[data-status='201']")
    result.wait_for()
    assert "ありがとうございました" in page.locator("#download-thanks").inner_text()
    assert page.locator("#download-errors").is_hidden()
    answer = json.loads(result.inner_text().split("\n", 1)[1])
    assert answer["status"] == "created"
    lead_id = answer["lead_id"]

    # When the clock moves to 10:00 JST on a sending day and the schedules run
    now = stack.now()
    seconds = math.ceil((next_send_time(now) - now).total_seconds())
    status, _ = request(f"{stack.origin}/_local/clock/advance", {"by": f"PT{seconds}S"})
    assert status == 200
    status, _ = request(f"{stack.origin}/_local/tick", method="POST")
    assert status == 200

    # Then the welcome email is in the outbox
    row = f"#outbox tr[data-to='{email}']"
    # (SES holds the email a moment before the sender records it: its tags come then)
    tagged = f"{row}:has-text('program=welcome')"
    shows(page, f"{console}/outbox", tagged, f"the welcome email to {email} in the outbox")

    # When the recipient opens it (an Open event) and clicks its first tracked link
    page.locator(f"{row} a").first.click()
    assert "Open" in page.locator("#published").inner_text()
    mail_page = page.url
    unsubscribe = page.locator("#list-unsubscribe").inner_text().strip().strip("<>")
    page.frame_locator("iframe.mail").locator("a[href*='/click?']:visible").first.click()
    assert page.locator("#target").get_attribute("href", timeout=PAGE_TIMEOUT_MS)
    assert "Click" in page.locator("#published").inner_text()

    # Then both reach the lead's timeline through the engagement path
    lead_page = f"{console}/leads/{lead_id}"
    shows(page, lead_page, "#timeline tr.email_opened", "email_opened on the lead's timeline")
    shows(page, lead_page, "#timeline tr.email_clicked", "email_clicked on the lead's timeline")

    # When the mail client posts the one-click unsubscribe (RFC 8058)
    response = page.request.post(unsubscribe, form={"List-Unsubscribe": "One-Click"})
    assert response.status == 200, response.text()

    # Then the lead is unsubscribed
    shows(page, lead_page, "#unsubscribed", "the lead unsubscribed")
    shows(page, lead_page, "#timeline tr.unsubscribed", "unsubscribed on the lead's timeline")

    # and a permanent bounce simulated from the outbox suppresses it for good
    page.goto(f"{mail_page}?track=0")
    page.locator("#bounce").click()
    assert "Bounce" in page.locator("#published").inner_text()
    # (the profile and the activity are separate writes: wait for each)
    shows(page, lead_page, "#suppressed", "the lead suppressed after the bounce")
    shows(page, lead_page, "#timeline tr.email_bounced", "email_bounced on the lead's timeline")


def welcome_in_outbox(stack: Stack, page: Page, email: str) -> str:
    """Move the clock to sending hours and run the schedules; the URL of the welcome email
    to ``email`` in the outbox once the sender has recorded it."""
    now = stack.now()
    seconds = math.ceil((next_send_time(now) - now).total_seconds())
    assert request(f"{stack.origin}/_local/clock/advance", {"by": f"PT{seconds}S"})[0] == 200
    assert request(f"{stack.origin}/_local/tick", method="POST")[0] == 200
    console = f"{stack.origin}/console"
    row = f"#outbox tr[data-to='{email}']:has-text('program=welcome')"
    shows(page, f"{console}/outbox", row, "the welcome email in the outbox")
    return f"{stack.origin}{page.locator(f'{row} a').first.get_attribute('href')}"


def test_a_scanned_email_is_labelled_a_machines_on_the_timeline_and_scores_nothing(
    stack: Stack, page: Page
) -> None:
    console = f"{stack.origin}/console"
    email = f"scanned-{uuid.uuid4().hex[:8]}@example.co.jp"
    # Given a lead at a company whose mail gateway scans every email, sent the welcome
    status, body = request(
        f"{stack.api}/leads",
        {"email": email, "form_type": "newsletter", "consent": True, "name": "高橋 誠"},
    )
    assert status == 201, body
    lead_page = f"{console}/leads/{body['lead_id']}"
    mail_page = welcome_in_outbox(stack, page, email)
    page.goto(lead_page)
    score = page.locator("#score").inner_text()

    # When the gateway opens it and follows every link, the hidden one too, on delivery
    page.goto(f"{mail_page}?track=0")
    page.locator("#scan").click()
    assert "scanner" in page.locator("#published").inner_text()

    # Then each open and click is on the timeline, in words, labelled a machine's with why
    machine_clicks = "#timeline tr.email_clicked.machine"

    def all_scanned() -> bool | None:
        page.goto(lead_page)
        done = page.locator(machine_clicks).count() >= 3
        return True if done and "隠しリンク" in page.locator("#timeline").inner_text() else None

    eventually(all_scanned, "the scanner's clicks on the timeline", ARRIVAL_TIMEOUT_S)
    first = page.locator(machine_clicks).first
    assert "クリック" in first.inner_text()
    assert "Clicked" in first.inner_text()
    assert "機械" in first.locator(".machine-label").inner_text()
    why = first.locator(".why").inner_text()
    assert "Microsoft Defender" in why
    assert page.locator("#timeline tr.email_opened.machine").count() == 1
    # and none of it scored
    assert page.locator("#score").inner_text() == score
    assert page.locator("#timeline code").count() == 0  # details are text, not JSON

    # When the reader opens it later and clicks a link themselves
    page.goto(mail_page)
    page.frame_locator("iframe.mail").locator(CONTENT_LINKS).first.click()
    assert "Click" in page.locator("#published").inner_text()

    # Then that click is a person's and it scores
    person = "#timeline tr.email_clicked:not(.machine)"
    shows(page, lead_page, person, "the reader's click on the timeline")
    assert "点" in page.locator(person).first.inner_text()
    assert float(page.locator("#score").inner_text()) > float(score)


def read(page: Page, url: str, seconds: int) -> None:
    """Open ``url`` and stay ``seconds`` on the page's own clock (the snippet's time)."""
    page.goto(url)
    page.clock.run_for(seconds * 1000)


def page_views(page: Page, lead_page: str) -> list[str]:
    page.goto(lead_page)
    return page.locator("#timeline tr.page_viewed").all_inner_texts()


def test_pages_read_before_the_form_and_after_an_email_link_are_the_leads(
    stack: Stack, page: Page, browser: Browser
) -> None:
    console = f"{stack.origin}/console"
    email = f"visitor-{uuid.uuid4().hex[:8]}@example.co.jp"
    page.clock.install()

    # Given a visitor who agrees to the site's tracking and reads the product page
    # briefly, the pricing page for 45 seconds and a case study for 20
    page.goto(f"{console}/site/product")
    page.locator("#consent-accept").click()
    assert page.locator("#consent-banner").is_hidden()
    page.clock.run_for(3000)
    read(page, f"{console}/site/pricing", 45)
    read(page, f"{console}/site/case-studies/toyo-seiki", 20)

    # When it downloads the whitepaper from the site's form
    page.goto(f"{console}/site")
    assert page.locator("#download-form [name=visitor_id]").input_value()
    form = page.locator("#download-form")
    form.locator("[name=name]").fill("伊藤 直子")
    form.locator("[name=email]").fill(email)
    form.locator("[name=company]").fill("東洋精機株式会社")
    form.locator("[name=consent]").check()
    form.locator("button[type=submit]").click()
    result = page.locator("#download-result[data-status='201']")
    result.wait_for()
    lead_id = json.loads(result.inner_text().split("\n", 1)[1])["lead_id"]
    lead_page = f"{console}/leads/{lead_id}"

    # Then the lead's timeline shows the pages it read before, with their titles
    def three_pages() -> list[str] | None:
        views = page_views(page, lead_page)
        return views if len(views) >= 3 else None

    views = eventually(three_pages, "the pages read before the form", ARRIVAL_TIMEOUT_S)
    text = "\n".join(views)
    assert "ページ閲覧" in text
    assert "料金プラン | Flowlane" in text
    assert "導入事例：東洋精機株式会社" in text
    assert "製品紹介 | Flowlane" in text
    # and its score includes them: the download 10, pricing 8, the case study 3 (the
    # product page, read for 3 seconds, is on the timeline without points)
    pricing = next(v for v in views if "料金プラン" in v)
    assert "+8 点" in pricing
    product = next(v for v in views if "製品紹介" in v)
    assert "点" not in product
    assert float(page.locator("#score").inner_text()) >= 21

    # When the welcome email goes out and the lead, on another computer, follows its link
    page.goto(welcome_in_outbox(stack, page, email))
    href = page.frame_locator("iframe.mail").locator(CONTENT_LINKS).first.get_attribute("href")
    target = parse_qs(urlsplit(href or "").query)["url"][0]
    (reference,) = parse_qs(urlsplit(target).query)["lnr"]
    other = browser.new_context(locale="ja-JP")
    try:
        laptop = other.new_page()
        laptop.clock.install()
        laptop.goto(f"{console}/site/pricing?lnr={reference}")
        laptop.locator("#consent-accept").click()
        # (the reference is exchanged once and leaves the address bar)
        laptop.wait_for_url(f"{console}/site/pricing")
        laptop.clock.run_for(30_000)
        laptop.goto(f"{console}/site")

        # Then that visit is the lead's too, without a form
        def pricing_twice() -> list[str] | None:
            found = [v for v in page_views(page, lead_page) if "料金プラン" in v]
            return found if len(found) >= 2 else None

        again = eventually(pricing_twice, "the visit from the email link", ARRIVAL_TIMEOUT_S)
        assert len(again) == 2
        assert "30 秒" in again[0]  # newest first
    finally:
        other.close()


def newest_mail(page: Page, console: str, email: str, count: int) -> str | None:
    """The outbox URL of the newest email to ``email`` once ``count`` have gone out."""
    page.goto(f"{console}/outbox")
    rows = page.locator(f"#outbox tr[data-to='{email}']")
    if rows.count() < count:
        return None
    return str(rows.first.locator("a").first.get_attribute("href"))


def wait_for_mail(page: Page, console: str, email: str, count: int) -> str:
    """Move the clock a day at a time from the console's header until email ``count``."""
    for _ in range(MAX_DAYS_PER_EMAIL):
        try:
            return eventually(
                lambda: newest_mail(page, console, email, count), f"email {count}", MAIL_WAIT_S
            )
        except AssertionError:
            page.locator("#clock-day").click()  # +1 day, then the schedules run once
            page.wait_for_url(f"{console}/outbox")
    raise AssertionError(f"email {count} to {email} within {MAX_DAYS_PER_EMAIL} days")


def read_and_click_everything(page: Page, origin: str, mail_url: str) -> int:
    """Open the email (an Open event) and follow each of its content links (Clicks)."""
    page.goto(f"{origin}{mail_url}")
    assert "Open" in page.locator("#published").inner_text()
    links = page.frame_locator("iframe.mail").locator(CONTENT_LINKS)
    count = links.count()
    assert count, f"no content links in {mail_url}"
    for index in range(count):
        page.goto(f"{origin}{mail_url}?track=0")
        page.frame_locator("iframe.mail").locator(CONTENT_LINKS).nth(index).click()
        assert "Click" in page.locator("#published").inner_text()
    return count


def test_a_seminar_registrant_who_reads_the_emails_for_days_is_handed_to_sales(
    stack: Stack, page: Page
) -> None:
    console = f"{stack.origin}/console"
    email = f"seminar-{uuid.uuid4().hex[:8]}@example.co.jp"
    company = f"育成試験{uuid.uuid4().hex[:6]}製作所"

    # Given a department head at a large manufacturer who registers for a seminar
    page.goto(f"{console}/site")
    form = page.locator("#seminar-form")
    form.locator("[name=name]").fill("鈴木 一郎")
    form.locator("[name=email]").fill(email)
    form.locator("[name=prefecture]").fill("大阪")
    form.locator("[name=company]").fill(company)
    form.locator("[name=industry]").select_option("製造業")
    form.locator("[name=company_size]").select_option("1000+")
    form.locator("[name=job_title]").fill("生産技術部 部長")
    form.locator("[name=consent]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{console}/site/thanks")

    # Then the registration alone does not qualify: the lead is nurtured, not handed over
    page.goto(f"{console}/leads")
    row = page.locator(f"#leads tr:has-text('{email}')")
    assert row.locator(".stage").inner_text().lower() == "lead"
    assert row.locator("td").nth(4).inner_text() == "A"
    lead_page = f"{stack.origin}{row.locator('a').first.get_attribute('href')}"

    # When the clock is moved to sending hours from the console's header
    page.goto(f"{console}/outbox")
    page.locator("#clock-sending").click()
    page.wait_for_url(f"{console}/outbox")

    # and the reader opens every email and follows its links, day after day
    read = 0
    while read < MAX_EMAILS_TO_MQL:
        mail_url = wait_for_mail(page, console, email, read + 1)
        read_and_click_everything(page, stack.origin, mail_url)
        read += 1

        def qualified() -> bool | None:
            page.goto(lead_page)
            return True if page.locator("#qualification").count() else None

        try:
            eventually(qualified, "the lead qualifying", MAIL_WAIT_S)
            break
        except AssertionError:
            assert page.locator("#stage").inner_text().lower() == "lead"

    # Then engagement with more than one email, over days, made the lead an MQL by score
    assert 1 < read < MAX_EMAILS_TO_MQL, f"qualified after {read} emails"
    assert page.locator("#qualification").get_attribute("data-reason") == "score"
    assert page.locator("#stage").inner_text().lower() == "mql"
    assert float(page.locator("#score").inner_text()) >= 50
    assert page.locator("#timeline tr.qualified").count() == 1
    clicks = page.locator("#timeline tr.email_clicked").count()
    assert clicks >= read

    # and sales receive it in their inbox, with the reasons
    shows(page, f"{console}/sales", f".sales-message:has-text('{company}')", "the MQL in the inbox")
    message = page.locator(f".sales-message:has-text('{company}')").first
    assert message.locator(".subject").inner_text().startswith(f"[MQL] {company} / 鈴木 一郎")
    assert email in message.locator("pre.body").inner_text()


def test_bad_input_gets_a_friendly_page_or_field_errors_in_the_browser(
    stack: Stack, page: Page
) -> None:
    console = f"{stack.origin}/console"

    # Given the plain inquiry form posted with an address the browser would have stopped
    page.goto(f"{console}/site")
    form = page.locator("#inquiry-form")
    form.evaluate("form => { form.noValidate = true; }")
    form.locator("[name=family_name]").fill("山田")
    form.locator("[name=email]").fill("yamada@")
    form.locator("button[type=submit]").click()

    # Then the API redirects to the site's error page, which names the field in Japanese
    page.wait_for_url(f"{console}/site/error?errors=email")
    assert "入力内容をご確認ください" in page.locator("#form-error").inner_text()
    assert "メールアドレス" in page.locator(".card li").first.inner_text()

    # Given the fetch form sent with a bad address and without the consent it requires
    page.goto(f"{console}/site")
    form = page.locator("#download-form")
    form.evaluate("form => { form.noValidate = true; }")
    form.locator("[name=email]").fill("sato@@example.co.jp")
    form.locator("button[type=submit]").click()

    # Then the page shows the API's field-level errors, and no thank-you
    page.locator("#download-result[data-status='422']").wait_for()
    errors = page.locator("#download-errors").inner_text()
    assert "email:" in errors
    assert "consent:" in errors
    assert page.locator("#download-thanks").is_hidden()


# A legacy company site's contact page, served as Shift_JIS: the browser posts the form
# in Shift_JIS and fills the hidden _charset_ input to say so.
LEGACY_PAGE = """<!DOCTYPE html>
<html lang="ja"><head><meta charset="Shift_JIS"><title>お問い合わせ</title></head>
<body><h1 id="title">お問い合わせ</h1>
<form id="legacy-form" method="post" action="{action}" enctype="{enctype}">
<input type="hidden" name="_charset_">
<input type="hidden" name="thanks_url" value="{thanks}">
<p>姓 <input name="family_name"> 名 <input name="given_name"></p>
<p>メールアドレス <input name="email"></p>
<p>会社名 <input name="company"></p>
<p>お問い合わせ内容 <textarea name="message"></textarea></p>
<button type="submit">送信する</button>
</form></body></html>
"""


@pytest.mark.parametrize(
    ("enctype", "charset", "family_name"),
    [
        pytest.param(
            "application/x-www-form-urlencoded",
            b"_charset_=Shift_JIS",
            b"family_name=%FB%FC%8B%B4",
            id="urlencoded",
        ),
        pytest.param(
            "multipart/form-data",
            b'name="_charset_"\r\n\r\nShift_JIS\r\n',
            b'name="family_name"\r\n\r\n\xfb\xfc\x8b\xb4\r\n',
            id="multipart",
        ),
    ],
)
def test_a_form_on_a_shift_jis_page_stores_the_lead_in_japanese_as_typed(
    stack: Stack, page: Page, enctype: str, charset: bytes, family_name: bytes
) -> None:
    console = f"{stack.origin}/console"
    email = f"legacy-{uuid.uuid4().hex[:8]}@example.co.jp"
    legacy_url = f"{stack.origin}/legacy/contact.html"
    html = LEGACY_PAGE.format(
        action=f"{stack.api}/leads", thanks=f"{console}/site/thanks", enctype=enctype
    )
    page.route(
        legacy_url,
        lambda route: route.fulfill(
            status=200,
            headers={"Content-Type": "text/html; charset=Shift_JIS"},
            body=html.encode("cp932"),
        ),
    )

    # Given the contact form of a site whose pages are Shift_JIS
    page.goto(legacy_url)
    assert page.evaluate("document.characterSet") == "Shift_JIS"
    assert page.locator("#title").inner_text() == "お問い合わせ"

    # When a visitor types a name with 髙 and a company with 﨑 (cp932 only) and sends it
    form = page.locator("#legacy-form")
    form.locator("[name=family_name]").fill("髙橋")
    form.locator("[name=given_name]").fill("一郎")
    form.locator("[name=email]").fill(email)
    form.locator("[name=company]").fill("株式会社山﨑製作所")
    form.locator("[name=message]").fill("①の資料を希望します")
    with page.expect_request(f"{stack.api}/leads") as posted:
        form.locator("button[type=submit]").click()

    # Then the browser posted Shift_JIS (髙橋 as FB FC 8B B4) and said so
    sent = posted.value.post_data_buffer or b""
    assert charset in sent
    assert family_name in sent
    # and was sent on to the thank-you page
    page.wait_for_url(f"{console}/site/thanks")

    # and the lead holds the Japanese exactly as typed
    page.goto(f"{console}/leads")
    href = page.locator(f"#leads tr:has-text('{email}') a").first.get_attribute("href")
    lead_id = (href or "").rstrip("/").rsplit("/", 1)[-1]
    status, body = signed_request(f"{stack.api}/leads/{lead_id}")
    assert status == 200, body
    lead = body["lead"]
    assert (lead["family_name"], lead["given_name"], lead["name"]) == ("髙橋", "一郎", "髙橋 一郎")
    assert lead["company"] == "株式会社山﨑製作所"
    assert lead["message"] == "1の資料を希望します"  # NFKC: ① is 1, as from any page


def test_every_console_page_fits_a_1366_pixel_screen_and_is_kept_as_a_screenshot(
    stack: Stack, page: Page
) -> None:
    console = f"{stack.origin}/console"
    email = f"screens-{uuid.uuid4().hex[:8]}@example.co.jp"
    company = f"画面確認{uuid.uuid4().hex[:6]}株式会社"
    # Given a lead that asked for a quote (an MQL, in the sales inbox) and its welcome email
    page.set_viewport_size(SCREEN)
    page.goto(f"{console}/site")
    form = page.locator("#inquiry-form")
    form.locator("[name=family_name]").fill("中村")
    form.locator("[name=given_name]").fill("美咲")
    form.locator("[name=email]").fill(email)
    form.locator("[name=company]").fill(company)
    form.locator("[name=message]").fill("導入時期と費用について相談したいです。")
    form.locator("[name=consent]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(f"{console}/site/thanks")
    shows(page, f"{console}/sales", f".sales-message:has-text('{company}')", "the MQL in the inbox")
    qualified_at = stack.now().astimezone(JST)  # the stack's clock, moved on below
    page.goto(f"{console}/leads?q={email}")
    lead_page = f"{stack.origin}{page.locator('#leads a').first.get_attribute('href')}"
    # and a whitepaper download, whose welcome email goes out when the window opens
    reader = f"reader-{uuid.uuid4().hex[:8]}@example.co.jp"
    page.goto(f"{console}/site")
    download = page.locator("#download-form")
    download.locator("[name=name]").fill("小林 健")
    download.locator("[name=email]").fill(reader)
    download.locator("[name=consent]").check()
    download.locator("button[type=submit]").click()
    page.locator("#download-result[data-status='201']").wait_for()
    mail_page = welcome_in_outbox(stack, page, reader)

    pages = {
        "home": console,
        "site": f"{console}/site",
        "leads": f"{console}/leads",
        "lead": lead_page,
        "outbox": f"{console}/outbox",
        "mail": f"{mail_page}?track=0",
        "sales": f"{console}/sales",
        "funnel": f"{console}/funnel",
    }
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for name, url in pages.items():
        page.goto(url)
        page.wait_for_load_state("load")
        # Then nothing runs off the side of the screen
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= SCREEN["width"], f"{name}: {width} pixels wide"
        # and the page is kept as it looks
        shot = SCREENSHOTS / f"console-{name}.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000, name

    # The email is shown whole, down to the legal footer (sender, address, unsubscribe)
    page.goto(f"{mail_page}?track=0")
    frame = page.locator("iframe.mail")
    footer = page.frame_locator("iframe.mail").locator("a[href*='/unsubscribe']").first
    footer.wait_for()
    inside = footer.bounding_box()
    box = frame.bounding_box()
    assert inside is not None
    assert box is not None
    assert inside["y"] + inside["height"] <= box["y"] + box["height"]
    # and the sales inbox tells the time on the stack's clock, as every other page does
    page.goto(f"{console}/sales")
    message = page.locator(f".sales-message:has-text('{company}')").first
    stamped = message.locator("p.muted").first.inner_text()
    assert qualified_at.strftime("%Y-%m-%d %H") in stamped
