"""Transparent category rules. Every decision names the rule that made it.

Order (the first rule that matches decides):

1. ``likely_spam``: spam score >= ``SPAM_THRESHOLD`` (points in ``spam_signals``).
2. ``invoice_receipt``: invoice/receipt words in the subject, an attachment named like an
   invoice, or invoice phrases in the body.
3. ``notification`` (strong signals): an ``Auto-Submitted`` header other than ``no``, a sender
   such as ``notifications@``/``alerts@``/``mailer-daemon@``, or a subject such as "security
   alert" or "verification code".
4. ``newsletter``: ``List-Unsubscribe``, ``List-Id``, ``Precedence: bulk|list``, a sender such as
   ``newsletter@``, or an unsubscribe link or sentence in the body.
5. ``notification`` (weak signal): a ``no-reply``/``do-not-reply`` sender.
6. ``support_request``: addressed to ``support@``/``help@``/``helpdesk@``..., a support word in
   the subject, or two different support words in the sender's own text.
7. ``personal``: none of the above.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from innosystem_email_processing.parsing import ParsedEmail

CATEGORIES = (
    "newsletter",
    "notification",
    "invoice_receipt",
    "support_request",
    "personal",
    "likely_spam",
)
SPAM_THRESHOLD = 5
#: Each distinct phrase found scores 2 points, at most 3 phrases (6 points).
SPAM_PHRASE_POINTS = 2
SPAM_PHRASES_COUNTED = 3
SPAM_PHRASES = (
    "you have won",
    "you've won",
    "you are a winner",
    "winner",
    "claim your prize",
    "claim your reward",
    "lottery",
    "jackpot",
    "viagra",
    "cialis",
    "casino",
    "100% free",
    "risk-free",
    "risk free",
    "act now",
    "limited time offer",
    "click here",
    "earn money",
    "make money fast",
    "work from home",
    "million dollars",
    "inheritance",
    "beneficiary",
    "wire transfer",
    "double your money",
    "guaranteed income",
    "no credit check",
    "cheap meds",
    "dear friend",
    "verify your account",
    "account suspended",
    "urgent response",
)
EXECUTABLE_EXTENSIONS = (
    ".exe .scr .com .pif .bat .cmd .vbs .vbe .js .jse .wsf .wsh .hta .msi .jar .lnk .ps1 .cpl"
).split()

_SPAM_RE = [(p, re.compile(r"(?<!\w)" + re.escape(p) + r"(?!\w)")) for p in SPAM_PHRASES]
_INVOICE_SUBJECT = re.compile(
    r"\b(invoice|receipt|rechnung|quittung|factura|facture|fattura|recibo|"
    r"payment (?:confirmation|received)|order confirmation|bestellbest\u00e4tigung|"
    r"billing statement)\b",
    re.IGNORECASE,
)
_INVOICE_FILENAME = re.compile(r"invoice|receipt|rechnung|factura|facture|fattura|recibo", re.I)
_INVOICE_BODY = re.compile(
    r"\b(invoice (?:number|no\.?|#)|amount due|total due|balance due|payment received|"
    r"order total|rechnungsnummer|rechnungsbetrag|n\u00famero de factura)\b",
    re.IGNORECASE,
)
_NOTIFY_SENDER = re.compile(
    r"^(notifications?|notify|alerts?|mailer-daemon|postmaster|bounces?|system)([+.\-_]|$)", re.I
)
_NOREPLY_SENDER = re.compile(r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply)([+.\-_]|$)", re.I)
_NOTIFY_SUBJECT = re.compile(
    r"\b(security alert|verification code|password reset|reset your password|new sign-in|"
    r"new login|delivery status notification|undeliverable|has shipped|out of office|"
    r"automatic reply)\b",
    re.IGNORECASE,
)
_NEWSLETTER_SENDER = re.compile(r"^(newsletters?|news|digest|marketing)([+.\-_]|$)", re.I)
_UNSUBSCRIBE = re.compile(
    r"\b(unsubscribe|abbestellen|abmelden|darse de baja|se d\u00e9sabonner|d\u00e9sinscrire)\b",
    re.IGNORECASE,
)
_SUPPORT_ADDRESS = re.compile(
    r"^(support|help|helpdesk|service|customerservice|customer-service|kundenservice|soporte)"
    r"([+.\-_]|$)",
    re.I,
)
_SUPPORT_WORDS = re.compile(
    r"\b(help|support|issue|problem|not working|doesn't work|does not work|error|bug|broken|"
    r"crash(?:es|ed)?|unable to|can't log ?in|cannot log ?in|ticket|refund|"
    r"hilfe|fehler|funktioniert nicht|ayuda|no funciona|problema)\b",
    re.IGNORECASE,
)
_DOMAINISH = re.compile(r"^(?:https?://)?(?:www\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)+)(?:[/:?#].*)?$")


def _local(address: str | None) -> str:
    return (address or "").rpartition("@")[0] if "@" in (address or "") else (address or "")


def _site(host: str | None) -> str:
    """Last two labels of a host name (``mail.example.com`` -> ``example.com``)."""
    labels = [x for x in (host or "").lower().strip(".").split(".") if x]
    return ".".join(labels[-2:])


def _domain(address: str | None) -> str:
    return _site((address or "").rpartition("@")[2]) if "@" in (address or "") else ""


def spam_signals(p: ParsedEmail, own_text: str) -> list[dict[str, Any]]:
    """The spam rules that fire, each ``{"points", "rule"}``."""
    signals: list[dict[str, Any]] = []

    def add(points: int, rule: str) -> None:
        signals.append({"points": points, "rule": rule})

    flag = (p.header("X-Spam-Flag") or "").strip().lower()
    status = (p.header("X-Spam-Status") or "").strip().lower()
    if flag == "yes" or status.startswith("yes"):
        add(5, "an upstream filter marked it as spam (X-Spam-Flag/X-Spam-Status)")

    subject = p.headers["subject"] or ""
    letters = [c for c in subject if c.isalpha()]
    if len(letters) >= 10 and sum(c.isupper() for c in letters) >= 0.7 * len(letters):
        add(2, "subject mostly in capital letters")
    if subject.count("!") >= 3 or "$$$" in subject:
        add(1, "subject has 3+ exclamation marks or '$$$'")

    haystack = f"{subject}\n{own_text}".casefold()
    found = [phrase for phrase, rx in _SPAM_RE if rx.search(haystack)]
    if found:
        counted = found[:SPAM_PHRASES_COUNTED]
        add(
            SPAM_PHRASE_POINTS * len(counted),
            "spam phrases: " + ", ".join(f"'{x}'" for x in counted),
        )

    sender = p.headers["from"] or {}
    from_domain = _domain(sender.get("address"))
    reply_domains = {_domain(a["address"]) for a in p.headers["reply_to"]} - {""}
    if from_domain and reply_domains and reply_domains != {from_domain}:
        add(1, f"Reply-To domain {sorted(reply_domains)[0]} differs from From domain {from_domain}")
    shown = re.search(r"[\w.+-]+@([\w-]+(?:\.[\w-]+)+)", sender.get("name") or "")
    if shown and from_domain and _site(shown.group(1)) != from_domain:
        add(2, f"From name shows an address at {shown.group(1)} but the sender is {from_domain}")

    for text, href in p.links:
        m = _DOMAINISH.match(text.lower())
        target = _site(urlsplit(href).hostname) if href.lower().startswith("http") else ""
        if m and target and _site(m.group(1)) != target:
            add(2, f"link text shows {m.group(1)} but points to {urlsplit(href).hostname}")
            break

    risky = [
        a["filename"]
        for a in p.attachments
        if a["filename"] and a["filename"].lower().endswith(tuple(EXECUTABLE_EXTENSIONS))
    ]
    if risky:
        add(3, f"executable attachment {risky[0]}")
    if not p.headers["date_raw"]:
        add(1, "no Date header")
    if not p.headers["message_id"]:
        add(1, "no Message-ID header")
    return signals


def classify(p: ParsedEmail, own_text: str) -> dict[str, Any]:
    """``{"category", "reason", "spam_score", "spam_signals"}``; ``own_text`` is the body without
    quoted lines."""
    signals = spam_signals(p, own_text)
    score = sum(s["points"] for s in signals)
    category, reason = _category(p, own_text, signals, score)
    return {
        "category": category,
        "reason": reason,
        "spam_score": score,
        "spam_threshold": SPAM_THRESHOLD,
        "spam_signals": signals,
    }


def _category(
    p: ParsedEmail, own_text: str, signals: list[dict[str, Any]], score: int
) -> tuple[str, str]:
    if score >= SPAM_THRESHOLD:
        detail = "; ".join(f"{s['rule']} (+{s['points']})" for s in signals)
        return "likely_spam", f"spam score {score} >= {SPAM_THRESHOLD}: {detail}"

    subject = p.headers["subject"] or ""
    sender = (p.headers["from"] or {}).get("address") or ""
    local = _local(sender)

    m = _INVOICE_SUBJECT.search(subject)
    if m:
        return "invoice_receipt", f"subject contains '{m.group(1)}'"
    for a in p.attachments:
        if a["filename"] and _INVOICE_FILENAME.search(a["filename"]):
            return "invoice_receipt", f"attachment {a['filename']} is named like an invoice"
    m = _INVOICE_BODY.search(own_text)
    if m:
        return "invoice_receipt", f"body contains '{m.group(1)}'"

    auto = (p.header("Auto-Submitted") or "").strip().lower()
    if auto and auto != "no":
        return "notification", f"Auto-Submitted: {auto} header present"
    if _NOTIFY_SENDER.match(local):
        return "notification", f"sender {sender} is an automated notification address"
    m = _NOTIFY_SUBJECT.search(subject)
    if m:
        return "notification", f"subject contains '{m.group(1)}'"

    if p.header("List-Unsubscribe") is not None:
        return "newsletter", "List-Unsubscribe header present"
    if p.header("List-Id") is not None:
        return "newsletter", "List-Id header present"
    precedence = (p.header("Precedence") or "").strip().lower()
    if precedence in ("bulk", "list"):
        return "newsletter", f"Precedence: {precedence} header present"
    if _NEWSLETTER_SENDER.match(local):
        return "newsletter", f"sender {sender} is a newsletter address"
    m = _UNSUBSCRIBE.search(own_text) or next(
        (m for text, _ in p.links if (m := _UNSUBSCRIBE.search(text))), None
    )
    if m:
        return "newsletter", f"body offers to '{m.group(1)}'"

    if _NOREPLY_SENDER.match(local):
        return "notification", f"sender {sender} is a no-reply address"

    for a in [*p.headers["to"], *p.headers["cc"]]:
        if _SUPPORT_ADDRESS.match(_local(a["address"])):
            return "support_request", f"sent to the support address {a['address']}"
    m = _SUPPORT_WORDS.search(subject)
    if m:
        return "support_request", f"subject contains '{m.group(1)}'"
    words = sorted({w.lower() for w in _SUPPORT_WORDS.findall(own_text[:5000])})
    if len(words) >= 2:
        return "support_request", "body contains " + ", ".join(f"'{w}'" for w in words[:4])

    return "personal", "no spam, invoice, notification, newsletter or support signal"
