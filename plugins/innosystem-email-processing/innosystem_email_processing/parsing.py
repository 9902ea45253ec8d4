"""RFC 5322 parsing: headers, the plain-text body, the attachment list and the thread key.

Only the standard library's ``email`` package and BeautifulSoup's ``html.parser`` builder read the
message; nothing in it is executed, fetched or opened. Attachments are never decoded to disk: their
size is computed from the encoded text (base64) or by decoding in memory and counting bytes.
"""

from __future__ import annotations

import email.policy
import email.utils
import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC
from email.message import EmailMessage, Message
from email.parser import Parser
from typing import Any

#: The body text in the result is cut after this many characters (``body.truncated`` says so).
MAX_BODY_CHARS = 100_000
#: At most this many attachments are listed per message (``attachments_truncated`` says so).
MAX_ATTACHMENTS = 100

_MSG_ID = re.compile(r"<[^<>\s]+>")
_BASE64_NOISE = re.compile(r"[^A-Za-z0-9+/]")
_HEADER_NAME = re.compile(r"^[!-9;-~]+$")  # printable ASCII except ":" (RFC 5322 ftext)
#: Reply and forward prefixes removed from the subject for the thread key: English Re/Fw/Fwd and
#: the common localised ones (AW/WG German, SV Nordic, VS Finnish, Antw/Doorst Dutch, RIF
#: Italian, TR French, RES/ENC Portuguese, ODP/PD Polish), each optionally with a counter such as
#: ``Re[2]:`` or ``Re(2):``, and with an ASCII or full-width colon.
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:(?:re|fwd?|aw|wg|sv|vs|antw|doorst|rif|tr|res|enc|odp|pd)"
    r"\s*(?:\[\d+\]|\(\d+\))?\s*[:\uff1a]\s*)+",
    re.IGNORECASE,
)
#: Paragraph-like elements: a blank line before and after. Line-like ones: a line break before.
_BLOCK_TAGS = frozenset(
    "p div table ul ol h1 h2 h3 h4 h5 h6 blockquote pre section article header footer "
    "nav aside main form fieldset dl hr".split()
)
_LINE_TAGS = frozenset(["li", "tr", "dt", "dd", "option"])
_DROP_TAGS = ["script", "style", "head", "title", "template", "noscript", "iframe", "object"]


class UnparsableMessage(ValueError):
    """The text is not an RFC 5322 message (the item is recorded as an error)."""


@dataclass
class ParsedEmail:
    msg: EmailMessage
    headers: dict[str, Any]
    body_text: str
    body_source: str | None
    links: list[tuple[str, str]] = field(default_factory=list)  # (link text, href) from HTML
    attachments: list[dict[str, Any]] = field(default_factory=list)
    attachments_truncated: bool = False
    thread: dict[str, Any] = field(default_factory=dict)
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        """The first raw value of a header, unfolded, or None."""
        return raw_header(self.msg, name)


# --- headers ------------------------------------------------------------------------------------
def raw_header(msg: Message, name: str) -> str | None:
    """First value of header ``name`` as written (unfolded), without the policy's parsing."""
    wanted = name.lower()
    for key, value in msg.raw_items():
        if key.lower() == wanted:
            return " ".join(str(value).split())
    return None


def _decoded_header(msg: Message, name: str) -> str | None:
    """The header decoded (RFC 2047 encoded words), falling back to the raw text."""
    try:
        value = msg.get(name)
    except Exception:  # a header the policy cannot parse: keep what was written
        return raw_header(msg, name)
    return None if value is None else " ".join(str(value).split())


def _addresses(msg: Message, name: str) -> list[dict[str, str | None]]:
    out: list[dict[str, str | None]] = []
    try:
        headers = msg.get_all(name) or []
        for header in headers:
            for addr in getattr(header, "addresses", ()):
                out.append({"name": addr.display_name or None, "address": addr.addr_spec or None})
        if out or not headers:
            return out
    except Exception:
        out = []
    # The policy could not make addresses of it: the lenient classic parser.
    values = [v for k, v in msg.raw_items() if k.lower() == name.lower()]
    for display, address in email.utils.getaddresses([str(v) for v in values]):
        if display or address:
            out.append({"name": display or None, "address": address or None})
    return out


def _message_ids(value: str | None) -> list[str]:
    return _MSG_ID.findall(value or "")


def _first_id(value: str | None) -> str | None:
    if not value:
        return None
    ids = _message_ids(value)
    return ids[0] if ids else (value.strip() or None)


def _rfc3339_utc(value: str | None) -> str | None:
    if not value:
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt.tzinfo is None:  # "-0000": the time is UTC, the sender's zone unknown (RFC 5322 3.3)
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError):
        return None


# --- thread key ---------------------------------------------------------------------------------
def normalize_subject(subject: str | None) -> str:
    """Subject without leading reply/forward prefixes, whitespace collapsed, case-folded."""
    text = _SUBJECT_PREFIX.sub("", subject or "")
    return " ".join(text.split()).casefold()


def thread_of(
    subject: str | None, message_id: str | None, in_reply_to: str | None, references: list[str]
) -> dict[str, Any]:
    """The thread root is the first id in References, else In-Reply-To, else the message's own
    Message-ID (so the first message of a thread gets the same key as the replies to it).
    ``key`` = first 16 hex digits of SHA-256 over ``root + "\\n" + normalised subject``."""
    root = references[0] if references else (in_reply_to or message_id)
    normalized = normalize_subject(subject)
    digest = hashlib.sha256(f"{root or ''}\n{normalized}".encode()).hexdigest()[:16]
    return {"key": digest, "subject": normalized, "root": root}


# --- body ---------------------------------------------------------------------------------------
def _part_text(part: Message) -> str:
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return content
    except (LookupError, ValueError, AssertionError, AttributeError, KeyError):
        pass
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode("utf-8", errors="replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def html_to_text(html: str) -> tuple[str, list[tuple[str, str]]]:
    """Plain text and the links ``(text, href)`` of an HTML document, by BeautifulSoup's
    ``html.parser`` (the standard library's parser): scripts, styles, the head and comments are
    dropped, nothing is executed or loaded. Paragraph-like elements become blank lines, list items,
    table rows and ``<br>`` line breaks."""
    from bs4 import BeautifulSoup, CData, NavigableString, Tag

    soup = BeautifulSoup(html, "html.parser")
    links = [
        (" ".join(a.get_text(" ").split()), str(a.get("href", "")).strip())
        for a in soup.find_all("a", href=True)
        if not a.find_parent(_DROP_TAGS)
    ]
    # One pass over the tree (editing it in place is quadratic on large documents).
    out: list[str] = []
    stack: list[tuple[Any, bool]] = [(soup, False)]
    while stack:
        node, leaving = stack.pop()
        if isinstance(node, NavigableString):
            if type(node) in (NavigableString, CData):  # not comments, doctypes, scripts
                out.append(str(node))
            continue
        if not isinstance(node, Tag) or node.name in _DROP_TAGS:
            continue
        if node.name == "br":
            out.append("\n")
            continue
        if node.name in _BLOCK_TAGS:
            out.append("\n\n")
        elif node.name in _LINE_TAGS and not leaving:
            out.append("\n")
        if not leaving:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(node.contents))
    return tidy_text("".join(out)), links


def tidy_text(text: str) -> str:
    """Whitespace collapsed inside lines, trailing spaces and runs of blank lines removed."""
    lines = [" ".join(line.split()) for line in text.replace("\r\n", "\n").split("\n")]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


# --- attachments --------------------------------------------------------------------------------
def _leaves(msg: Message) -> list[Message]:
    """Non-multipart parts in document order; an attached message (message/*) is one leaf."""
    out: list[Message] = []
    stack: list[Message] = [msg]
    while stack:
        part = stack.pop()
        if part.get_content_maintype() == "multipart" and isinstance(part.get_payload(), list):
            stack.extend(reversed(part.get_payload()))
        else:
            out.append(part)
    return out


def _size(part: Message) -> int | None:
    payload = part.get_payload()
    if isinstance(payload, list):  # message/rfc822 and the like: size of the re-serialised message
        try:
            return sum(len(p.as_bytes()) for p in payload)
        except Exception:
            return None
    cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
    if cte == "base64":  # size from the encoded text, without decoding it
        return len(_BASE64_NOISE.sub("", payload)) * 3 // 4
    data = part.get_payload(decode=True)
    return len(data) if isinstance(data, bytes) else 0


def _attachment(part: Message) -> dict[str, Any]:
    try:
        filename = part.get_filename()
    except Exception:
        filename = None
    return {
        "filename": filename,
        "content_type": part.get_content_type(),
        "disposition": part.get_content_disposition() or "inline",
        "size": _size(part),
    }


# --- the whole message --------------------------------------------------------------------------
def parse(raw: str) -> ParsedEmail:
    """Parse one message; raises UnparsableMessage when the text has no RFC 5322 header fields
    or no From header."""
    text = raw.lstrip("\r\n")
    msg = Parser(policy=email.policy.default).parsestr(text)
    assert isinstance(msg, EmailMessage)
    names = [k for k, _ in msg.raw_items()]
    if not names or not all(_HEADER_NAME.match(n) for n in names):
        raise UnparsableMessage(
            "not an RFC 5322 message: no header fields (the text must start with "
            "'Name: value' lines, then a blank line, then the body)"
        )
    if raw_header(msg, "From") is None:
        raise UnparsableMessage("not an RFC 5322 message: no From header")

    date_raw = raw_header(msg, "Date")
    message_id = _first_id(raw_header(msg, "Message-ID"))
    in_reply_to = _first_id(raw_header(msg, "In-Reply-To"))
    references = _message_ids(raw_header(msg, "References"))
    subject = _decoded_header(msg, "Subject")
    senders = _addresses(msg, "From")
    headers = {
        "from": senders[0] if senders else None,
        "to": _addresses(msg, "To"),
        "cc": _addresses(msg, "Cc"),
        "reply_to": _addresses(msg, "Reply-To"),
        "subject": subject,
        "date": _rfc3339_utc(date_raw),
        "date_raw": date_raw,
        "message_id": message_id,
        "in_reply_to": in_reply_to,
        "references": references,
    }

    plain = msg.get_body(preferencelist=("plain",))
    html = msg.get_body(preferencelist=("html",))
    body_text, body_source, links = "", None, []
    if plain is not None:
        body_text, body_source = tidy_text(_part_text(plain)), "text/plain"
    if html is not None:
        html_text, links = html_to_text(_part_text(html))
        if not body_text:
            body_text, body_source = html_text, "text/html"
    payload = msg.get_payload()
    if not body_text and msg.get_content_maintype() == "multipart" and isinstance(payload, str):
        # A multipart message without a usable boundary: its content is one piece of text.
        body_text, body_source = tidy_text(payload), "text/plain"

    attachments = []
    for part in _leaves(msg):
        if part is plain or part is html or part.get_content_maintype() == "multipart":
            continue
        if part is msg and msg.get_content_maintype() == "text":
            continue
        is_file = part.get_content_disposition() == "attachment" or part.get_filename()
        if is_file or part.get_content_maintype() != "text":
            attachments.append(_attachment(part))
    defects = sorted({type(d).__name__ for p in [msg, *_leaves(msg)] for d in p.defects})

    return ParsedEmail(
        msg=msg,
        headers=headers,
        body_text=body_text,
        body_source=body_source,
        links=links,
        attachments=attachments[:MAX_ATTACHMENTS],
        attachments_truncated=len(attachments) > MAX_ATTACHMENTS,
        thread=thread_of(subject, message_id, in_reply_to, references),
        defects=defects,
    )
