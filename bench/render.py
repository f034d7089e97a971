"""Client-side time per send: rendering the email and building its raw MIME message.

Renders every step and subject variant of the shipped programs (``shared/content``) for
Japanese leads with full profiles, as the sender does (signed unsubscribe link, site
reference), and builds the message SES is sent. Prints the time per send of each half,
the way the code does it now next to the way it did before, measured in the same run:

- before: the subject template compiled on every send (``Environment.from_string``)
  and the message built with the standard library's ``EmailMessage`` (policy SMTP);
- after: ``EmailRenderer`` (subjects compiled once per source text) and ``build_mime``
  (the message written by hand).

Both messages are parsed back with the standard library first and must say the same.

Run: ``make bench-render`` (or ``python -m bench.render --rounds 50``).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import formataddr, make_msgid, parseaddr
from typing import TypeVar

from jinja2 import Template

from shared.domain.email import (
    EmailRenderer,
    OutgoingEmail,
    RenderedEmail,
    SenderProfile,
    build_mime,
)
from shared.domain.leads import ConsentState, FormType, Lead, Touch
from shared.domain.nurture import start
from shared.domain.programs import Program, Step, load_programs
from shared.domain.tokens import UnsubscribeTokens

NOW = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
SENDER = SenderProfile(
    company_name="株式会社サンプル",
    from_address="株式会社サンプル <news@example.co.jp>",
    postal_address="〒100-0005 東京都千代田区丸の内1-1-1",
    contact_email="marketing@example.co.jp",
    site_url="https://www.example.co.jp",
    privacy_url="https://www.example.co.jp/privacy",
)
UNSUBSCRIBE_URL = "https://api.example.co.jp/v1/unsubscribe"
TOKENS = UnsubscribeTokens(b"bench-signing-secret-0123456789")
PROFILES = [
    ("山田", "太郎", "株式会社テスト商事", "管理本部", "部長", "製造業"),
    ("佐藤", "花子", "さくら情報システム株式会社", "情報システム部", "課長", "情報通信業"),
    ("髙橋", "健一", "有限会社たかはし工務店", "", "代表取締役", "建設業"),
]


class RecompilingRenderer(EmailRenderer):
    """The renderer as it was: the subject compiled anew for every send."""

    def _subject_template(self, source: str) -> Template:
        return self._text.from_string(source)


def stdlib_mime(email: OutgoingEmail) -> bytes:
    """``build_mime`` as it was: the standard library's EmailMessage, policy SMTP."""
    url = email.unsubscribe_url
    message = EmailMessage(policy=SMTP)
    display, address = parseaddr(email.from_address)
    domain = address.rpartition("@")[2] or "localhost"
    message["From"] = formataddr((display, address)) if display else address
    message["To"] = Address(addr_spec=email.to_address)
    message["Subject"] = email.rendered.subject
    message["Message-ID"] = make_msgid(domain=domain)
    message.set_content(email.rendered.text, subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative(email.rendered.html, subtype="html", charset="utf-8", cte="base64")
    message["Content-Language"] = email.rendered.locale
    one_click = (
        f"List-Unsubscribe: <{url}>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
    ).encode("ascii")
    return one_click + message.as_bytes()


def lead(index: int) -> Lead:
    family, given, company, department, title, industry = PROFILES[index % len(PROFILES)]
    touch = Touch(
        at=NOW - timedelta(days=1),
        form_type=FormType.DOWNLOAD,
        asset="dx-whitepaper-2026",
        source="website",
    )
    return Lead(
        lead_id=f"{index:032x}",
        email=f"lead{index}@example.co.jp",
        family_name=family,
        given_name=given,
        name=f"{family} {given}",
        company=company,
        department=department,
        job_title=title,
        industry=industry,
        first_touch=touch,
        last_touch=touch,
        consent=ConsentState(opted_in=True, at=touch.at, wording_version="2026-01"),
        enrolment=start(load_programs().programs[0], touch.at),
        created_at=touch.at,
        updated_at=touch.at,
    )


Send = tuple[Lead, Program, Step, int, str, str]
T = TypeVar("T")


def sends() -> list[Send]:
    """Every step and subject variant of the shipped nurture programs, for a few leads
    (an event program's steps render the same way, for an event)."""
    jobs: list[Send] = []
    for program in load_programs().programs:
        if program.kind != "nurture":
            continue
        for step in program.steps:
            for variant in range(step.variants):
                person = lead(len(jobs))
                url = f"{UNSUBSCRIBE_URL}?t={TOKENS.sign(person.lead_id)}"
                ref = TOKENS.site_references().sign(person.lead_id)
                jobs.append((person, program, step, variant, url, ref))
    return jobs


def outgoing(rendered: RenderedEmail, send: Send) -> OutgoingEmail:
    person, _, _, _, url, _ = send
    return OutgoingEmail(SENDER.from_address, person.email, rendered, url, {})


def per_send(items: list[T], rounds: int, work: Callable[[T], object]) -> float:
    """Milliseconds per send: the median over rounds of the mean over ``items``."""
    means = []
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            work(item)
        means.append((time.perf_counter() - started) / len(items))
    return 1000 * statistics.median(means)


def same_message(old: bytes, new: bytes) -> None:
    """Both builds parse to the same headers and parts (Message-ID aside)."""
    parsed = [message_from_bytes(raw, policy=policy.default) for raw in (old, new)]
    for name in ("From", "To", "Subject", "Content-Language"):
        assert str(parsed[0][name]) == str(parsed[1][name]), name
    for name in ("List-Unsubscribe", "List-Unsubscribe-Post", "MIME-Version"):
        assert parsed[0][name] == parsed[1][name], name
    for subtype in ("plain", "html"):
        parts = [m.get_body(preferencelist=(subtype,)) for m in parsed]
        assert parts[0] is not None
        assert parts[1] is not None
        assert parts[0].get_content() == parts[1].get_content(), subtype


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.render", description=__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="passes over every send")
    args = parser.parse_args(argv)

    jobs = sends()
    before, after = RecompilingRenderer(SENDER), EmailRenderer(SENDER)
    emails: list[OutgoingEmail] = []
    for job in jobs:
        person, program, step, variant, url, ref = job
        old = before.render(person, program, step, variant, url, site_ref=ref)
        new = after.render(person, program, step, variant, url, site_ref=ref)
        assert old == new
        emails.append(outgoing(new, job))
        same_message(stdlib_mime(emails[-1]), build_mime(emails[-1]))

    def render_with(renderer: EmailRenderer) -> Callable[[Send], object]:
        def work(job: Send) -> object:
            person, program, step, variant, url, ref = job
            return renderer.render(person, program, step, variant, url, site_ref=ref)

        return work

    # Interleaved, so that a slower moment of the machine weighs on both alike.
    times: dict[str, list[float]] = {k: [] for k in ("render0", "render1", "mime0", "mime1")}
    for _ in range(3):
        times["render0"].append(per_send(jobs, args.rounds, render_with(before)))
        times["render1"].append(per_send(jobs, args.rounds, render_with(after)))
        times["mime0"].append(per_send(emails, args.rounds, stdlib_mime))
        times["mime1"].append(per_send(emails, args.rounds, build_mime))
    best = {k: min(v) for k, v in times.items()}

    size = statistics.mean(len(build_mime(email)) for email in emails)
    print(
        f"{len(jobs)} sends per round (every step and subject variant of the shipped "
        f"programs, Japanese leads), {args.rounds} rounds, best of 3; "
        f"{size / 1024:.1f} KiB per message, e.g. 「{emails[0].rendered.subject}」"
    )
    print(f"{'ms per send':<28}render     MIME    total")
    for label, key in (("before (recompile, stdlib)", "0"), ("after", "1")):
        render, mime = best[f"render{key}"], best[f"mime{key}"]
        print(f"{label:<27}{render:7.3f}  {mime:7.3f}  {render + mime:7.3f}")
    total0 = best["render0"] + best["mime0"]
    total1 = best["render1"] + best["mime1"]
    print(
        f"{'ratio before / after':<27}{best['render0'] / best['render1']:7.1f}  "
        f"{best['mime0'] / best['mime1']:7.1f}  {total0 / total1:7.1f}"
    )


if __name__ == "__main__":
    main()
