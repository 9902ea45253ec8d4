"""email-proc-v1 on real messages built with the standard library's EmailMessage."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from uuid import uuid4

import pytest
from innosystem_email_processing import EmailProcessing, innosystem_processors
from innosystem_email_processing.parsing import normalize_subject

from innosystem import JobContext, PermanentError
from innosystem.errors import ValidationFailed

PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"  # 2,064 bytes, binary
WHEN = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)


def make_ctx() -> tuple[JobContext, list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    ctx = JobContext(
        job_id=uuid4(),
        attempt=1,
        job_type_id=uuid4(),
        customer_id=uuid4(),
        runner_id="test",
        _progress=seen.append,  # where report_progress sends its reports
    )
    return ctx, seen


def multipart_with_attachment() -> str:
    msg = EmailMessage()
    msg["From"] = "Ada Lovelace <ada@example.org>"
    msg["To"] = "Charles Babbage <charles@example.net>, grace@example.com"
    msg["Cc"] = "Mary Somerville <mary@example.org>"
    msg["Subject"] = "Re: Fwd: Notes on the Analytical Engine"
    msg["Date"] = format_datetime(datetime(2025, 3, 14, 10, 26, 53))  # naive: "-0000", UTC
    msg["Message-ID"] = "<reply-2@example.org>"
    msg["In-Reply-To"] = "<reply-1@example.net>"
    msg["References"] = "<root-0@example.net> <reply-1@example.net>"
    msg.set_content(
        "Dear Charles,\n\nI finished the notes on the engine and I am delighted with how they "
        "turned out. The diagrams came out wonderfully well.\n\nWarm regards,\nAda\n\n"
        "On Thursday, Charles wrote:\n> Could you send the latest notes?\n"
    )
    msg.add_alternative(
        "<html><body><p>Dear Charles,</p><p>I finished the <b>notes</b>.</p></body></html>",
        subtype="html",
    )
    msg.add_attachment(
        PDF_BYTES, maintype="application", subtype="pdf", filename="engine-notes.pdf"
    )
    return msg.as_string()


def html_only_newsletter() -> str:
    msg = EmailMessage()
    msg["From"] = "The Weekly Byte <hello@weeklybyte.example>"
    msg["To"] = "reader@example.com"
    msg["Subject"] = "This week: faster Python, smaller containers"
    msg["Date"] = format_datetime(WHEN)
    msg["Message-ID"] = make_msgid(domain="weeklybyte.example")
    msg["List-Unsubscribe"] = "<https://weeklybyte.example/unsubscribe?u=42>"
    msg.set_content(
        "<html><head><title>Weekly</title><style>p {color: red}</style>"
        "<script>alert('never run')</script></head><body>"
        "<h1>The Weekly Byte</h1><p>Python 3.14 brings a faster interpreter and "
        "great improvements to error messages.</p><ul><li>Smaller images</li>"
        "<li>Better caching</li></ul>"
        "<p><a href='https://weeklybyte.example/unsubscribe?u=42'>Unsubscribe</a></p>"
        "</body></html>",
        subtype="html",
    )
    return msg.as_string()


def invoice() -> str:
    msg = EmailMessage()
    msg["From"] = "Billing <billing@cloudhost.example>"
    msg["To"] = "accounts@example.com"
    msg["Subject"] = "Your invoice INV-2025-0042 for March"
    msg["Date"] = format_datetime(WHEN)
    msg["Message-ID"] = "<inv-0042@cloudhost.example>"
    msg.set_content(
        "Hello,\n\nInvoice number INV-2025-0042 is attached. Amount due: EUR 120.00 by 31 March."
        "\n\nThank you for your business.\n"
    )
    msg.add_attachment(
        PDF_BYTES, maintype="application", subtype="pdf", filename="INV-2025-0042.pdf"
    )
    return msg.as_string()


def support_request() -> str:
    msg = EmailMessage()
    msg["From"] = "Jamie Doe <jamie@example.com>"
    msg["To"] = "support@cloudhost.example"
    msg["Subject"] = "Cannot reach my dashboard"
    msg["Date"] = format_datetime(WHEN)
    msg["Message-ID"] = "<q-77@example.com>"
    msg.set_content(
        "Hi,\n\nsince this morning the dashboard shows an error 500 and I am unable to log in. "
        "This is really frustrating, please fix it.\n\nJamie\n"
    )
    return msg.as_string()


def spam() -> str:
    msg = EmailMessage()
    msg["From"] = '"PayPal service@paypal.com" <winner@lucky-draw.example>'
    msg["To"] = "you@example.com"
    msg["Reply-To"] = "claims@another-domain.example"
    msg["Subject"] = "CONGRATULATIONS YOU HAVE WON $1,000,000!!!"
    msg.set_content(
        "Dear friend, you have won the lottery jackpot. Click here to claim your prize today, "
        "it is 100% free and risk-free!"
    )
    msg.add_alternative(
        "<p>Dear friend, <a href='http://lucky-draw.example/claim'>www.paypal.com</a></p>",
        subtype="html",
    )
    return msg.as_string()


def german_personal() -> str:
    msg = EmailMessage()
    msg["From"] = "Lena Schmidt <lena@example.de>"
    msg["To"] = "Tom Becker <tom@example.de>"
    msg["Subject"] = "Wochenende in den Bergen"
    msg["Date"] = "Sat, 15 Mar 2025 18:04:00 +0100"
    msg["Message-ID"] = "<berge-1@example.de>"
    msg.set_content(
        "Hallo Tom,\n\nwir fahren am Samstag mit dem Zug in die Berge und wandern zur Hütte. "
        "Möchtest du mitkommen? Das Wetter soll sonnig werden und wir bleiben bis Sonntag.\n\n"
        "Viele Grüße\nLena\n"
    )
    return msg.as_string()


def github_notification() -> str:
    msg = EmailMessage()
    msg["From"] = "Octo Cat <notifications@github.example>"
    msg["To"] = "me@example.com"
    msg["Subject"] = "[octo/repo] New issue opened (#12)"
    msg["Date"] = format_datetime(WHEN)
    msg["Message-ID"] = "<octo/repo/issues/12@github.example>"
    msg["List-Unsubscribe"] = "<mailto:unsub@github.example>"
    msg.set_content("A new issue was opened in octo/repo.")
    return msg.as_string()


GARBAGE = "%%% this is not an e-mail at all, just a line of noise 12345 %%%"


def run(items: list[str]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    proc = EmailProcessing()
    data = proc.validate_input({"items": [{"raw": raw} for raw in items]})
    ctx, progress = make_ctx()
    return proc.process(ctx, data), progress


# --- registration and laziness ------------------------------------------------------------------
def test_hook_returns_the_batch_processor() -> None:
    [proc] = innosystem_processors()
    assert proc.logic_id == "email-proc-v1"
    assert proc.processor_type == "batch"
    assert proc.describe()["input_schema"]["properties"]["items"]["maxItems"] == 100


def test_plugin_import_does_not_load_heavy_libraries() -> None:
    import subprocess

    code = (
        "import sys, innosystem_email_processing\n"
        "heavy = [m for m in ('bs4', 'langdetect', 'vaderSentiment', 'yake', "
        "'innosystem_email_processing.parsing') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({}, "input_data.items"),
        ({"items": []}, "input_data.items"),
        ({"items": [{"raw": ""}]}, "input_data.items.0.raw"),
        ({"items": [{"raw": "   \n "}]}, "input_data.items.0.raw"),
        ({"items": [{"raw": "x" * (1024 * 1024 + 1)}]}, "input_data.items.0.raw"),
        ({"items": [{"raw": "From: a@b.c\n\nhi", "extra": 1}]}, "input_data.items.0.extra"),
        ({"items": [{"raw": "From: a@b.c\n\nhi"}] * 101}, "input_data.items"),
        ({"items": [{"raw": 42}]}, "input_data.items.0.raw"),
        ({"items": [], "other": True}, "input_data"),
    ],
)
def test_bad_input_is_refused(data: Any, field: str) -> None:
    with pytest.raises(ValidationFailed) as info:
        EmailProcessing().validate_input(data)
    fields = [d["field"] for d in info.value.details]
    assert all(f.startswith("input_data") for f in fields)
    assert any(f.startswith(field) for f in fields), fields


def test_a_message_of_exactly_one_mib_is_accepted() -> None:
    raw = "From: a@example.com\n\n"
    raw += "x" * (1024 * 1024 - len(raw))
    assert EmailProcessing().validate_input({"items": [{"raw": raw}]})["items"][0]["raw"] == raw


# --- processing ---------------------------------------------------------------------------------
def test_multipart_message_with_html_and_attachment() -> None:
    out, _ = run([multipart_with_attachment()])
    item = out["items"][0]
    h = item["headers"]
    assert h["from"] == {"name": "Ada Lovelace", "address": "ada@example.org"}
    assert h["to"] == [
        {"name": "Charles Babbage", "address": "charles@example.net"},
        {"name": None, "address": "grace@example.com"},
    ]
    assert h["cc"] == [{"name": "Mary Somerville", "address": "mary@example.org"}]
    assert h["subject"] == "Re: Fwd: Notes on the Analytical Engine"
    assert h["date"] == "2025-03-14T10:26:53Z"
    assert h["message_id"] == "<reply-2@example.org>"
    assert h["in_reply_to"] == "<reply-1@example.net>"
    assert h["references"] == ["<root-0@example.net>", "<reply-1@example.net>"]
    # the text/plain part is the body; the HTML alternative is not an attachment
    assert item["body"]["source"] == "text/plain"
    assert item["body"]["text"].startswith("Dear Charles,")
    assert "> Could you send" in item["body"]["text"]
    assert item["attachments"] == [
        {
            "filename": "engine-notes.pdf",
            "content_type": "application/pdf",
            "disposition": "attachment",
            "size": len(PDF_BYTES),
        }
    ]
    assert item["thread"] == {
        "subject": "notes on the analytical engine",
        "root": "<root-0@example.net>",
    }
    assert item["language"]["code"] == "en"
    assert item["sentiment"]["label"] == "positive"
    assert item["sentiment_reliable"] is True
    assert item["classification"]["category"] == "personal"
    assert out["summary"] == {
        "total": 1,
        "succeeded": 1,
        "failed": 0,
        "by_category": {
            "newsletter": 0,
            "notification": 0,
            "invoice_receipt": 0,
            "support_request": 0,
            "personal": 1,
            "likely_spam": 0,
        },
    }


def test_thread_key_joins_the_first_message_and_its_replies() -> None:
    first = EmailMessage()
    first["From"] = "charles@example.net"
    first["Subject"] = "Notes on the Analytical Engine"
    first["Message-ID"] = "<root-0@example.net>"
    first.set_content("Could you send the latest notes?")
    second = EmailMessage()
    second["From"] = "ada@example.org"
    second["Subject"] = "RE: notes on the  analytical engine"
    second["In-Reply-To"] = "<root-0@example.net>"  # no References: In-Reply-To is the root
    second.set_content("Here they are.")
    out, _ = run([first.as_string(), second.as_string(), multipart_with_attachment()])
    keys = {i["thread_key"] for i in out["items"]}
    assert len(keys) == 1
    assert normalize_subject("AW: WG: Re[2]: Fwd:  Hello  World") == "hello world"


def test_batch_of_real_messages_with_a_garbage_item() -> None:
    raws = [
        multipart_with_attachment(),
        html_only_newsletter(),
        invoice(),
        support_request(),
        spam(),
        GARBAGE,
        german_personal(),
        github_notification(),
        "Subject: no sender\n\nbody",
    ]
    out, progress = run(raws)
    items = out["items"]
    assert [i["index"] for i in items] == list(range(len(raws)))
    cat = [i.get("classification", {}).get("category") for i in items]
    assert cat == [
        "personal",
        "newsletter",
        "invoice_receipt",
        "support_request",
        "likely_spam",
        None,
        "personal",
        "notification",
        None,
    ]

    newsletter = items[1]
    assert newsletter["classification"]["reason"] == "List-Unsubscribe header present"
    assert newsletter["body"]["source"] == "text/html"
    text = newsletter["body"]["text"]
    assert "Python 3.14 brings a faster interpreter" in text
    assert "Smaller images\nBetter caching" in text
    assert "alert(" not in text and "color: red" not in text and "Weekly\n" not in text
    assert newsletter["language"]["code"] == "en"

    inv = items[2]
    assert inv["classification"]["reason"] == "subject contains 'invoice'"
    assert inv["attachments"][0]["filename"] == "INV-2025-0042.pdf"
    assert inv["attachments"][0]["size"] == len(PDF_BYTES)

    support = items[3]
    assert support["classification"]["reason"] == (
        "sent to the support address support@cloudhost.example"
    )
    assert support["sentiment"]["label"] == "negative"

    junk = items[4]["classification"]
    assert junk["spam_score"] >= junk["spam_threshold"] == 5
    rules = " | ".join(s["rule"] for s in junk["spam_signals"])
    assert "subject mostly in capital letters" in rules
    assert "spam phrases" in rules
    assert "Reply-To domain" in rules
    assert "link text shows paypal.com but points to lucky-draw.example" in rules
    assert "From name shows an address at paypal.com" in rules
    assert junk["reason"].startswith("spam score")

    assert items[5] == {
        "index": 5,
        "error": "not an RFC 5322 message: no header fields (the text must start with "
        "'Name: value' lines, then a blank line, then the body)",
    }
    assert items[8] == {"index": 8, "error": "not an RFC 5322 message: no From header"}

    german = items[6]
    assert german["language"]["code"] == "de"
    assert german["sentiment_reliable"] is False
    assert "English" in german["sentiment_note"]
    assert german["headers"]["date"] == "2025-03-15T17:04:00Z"

    assert items[7]["classification"]["reason"] == (
        "sender notifications@github.example is an automated notification address"
    )

    summary = out["summary"]
    assert summary["total"] == 9 and summary["succeeded"] == 7 and summary["failed"] == 2
    assert summary["by_category"] == {
        "newsletter": 1,
        "notification": 1,
        "invoice_receipt": 1,
        "support_request": 1,
        "personal": 2,
        "likely_spam": 1,
    }
    assert progress[0] == {"total": 9, "succeeded": 0, "failed": 0}
    assert progress[-1] == {"total": 9, "succeeded": 7, "failed": 2}
    assert len(progress) == 10


def test_result_is_storable_json() -> None:
    import json

    nul = EmailMessage()
    nul["From"] = "a@example.com"
    nul["Subject"] = "binary-ish body"
    nul.set_content(b"hello\x00world", maintype="text", subtype="plain", cte="base64")
    out, _ = run([nul.as_string(), multipart_with_attachment()])
    text = json.dumps(out, allow_nan=False)
    assert "\\u0000" not in text
    assert out["items"][0]["body"]["text"] == "helloworld"


def test_every_item_failing_is_a_permanent_error() -> None:
    with pytest.raises(PermanentError, match=r"all 2 item\(s\) failed.*item 0: not an RFC 5322"):
        run([GARBAGE, "just words"])
