"""One message in, one result out: parse, analyse the body, classify."""

from __future__ import annotations

from typing import Any

from innosystem_email_processing.parsing import MAX_BODY_CHARS, parse
from innosystem_email_processing.rules import classify


def own_text(body: str) -> str:
    """The sender's own words: the body without quoted lines (``>``) and without the
    "On ... wrote:" line (any line ending in ":") right before a quote."""
    lines = body.split("\n")
    quoted = [line.lstrip().startswith(">") for line in lines]
    kept: list[str] = []
    next_is_quote = False  # is the next non-blank line a quoted one? (scanning backwards)
    for line, is_quote in zip(reversed(lines), reversed(quoted), strict=True):
        if not is_quote and not (next_is_quote and line.rstrip().endswith(":")):
            kept.append(line)
        if line.strip():
            next_is_quote = is_quote
    return "\n".join(reversed(kept)).strip()


def _json_safe(value: Any) -> Any:
    """Strings without U+0000 or lone surrogates (a decoded body may contain either), which the
    platform refuses to store."""
    if isinstance(value, str):
        if "\x00" in value:
            value = value.replace("\x00", "")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            value = value.encode("utf-8", "replace").decode("utf-8")
        return value
    if isinstance(value, dict):
        return {_json_safe(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def process_message(raw: str) -> dict[str, Any]:
    """The result for one message; raises (UnparsableMessage or anything unexpected) when the
    message cannot be processed."""
    from innosystem_text_analysis.analysis import (
        SENTIMENT_NOTE,
        detect_language,
        sentiment,
        sentiment_reliable,
    )

    p = parse(raw)
    body = p.body_text
    text = own_text(body[:MAX_BODY_CHARS])
    if text:
        language = detect_language(text)
        scores = sentiment(text)
        reliable = sentiment_reliable(language["code"])
    else:
        language, scores, reliable = None, None, False
    result = {
        "headers": p.headers,
        "body": {
            "text": body[:MAX_BODY_CHARS],
            "source": p.body_source,
            "characters": len(body),
            "truncated": len(body) > MAX_BODY_CHARS,
        },
        "attachments": p.attachments,
        "attachments_truncated": p.attachments_truncated,
        "thread_key": p.thread["key"],
        "thread": {"subject": p.thread["subject"], "root": p.thread["root"]},
        "language": language,
        "sentiment": scores,
        "sentiment_reliable": reliable,
        "sentiment_note": None if reliable or scores is None else SENTIMENT_NOTE,
        "classification": classify(p, text),
        "parse_defects": p.defects,
    }
    return _json_safe(result)
