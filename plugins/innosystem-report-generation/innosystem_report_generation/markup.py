"""The report markup: what a rendered template means, and the text the PDF fonts can print.

Pure Python (no Jinja2, no fpdf2), so it is cheap to import and easy to test. The markup is
line-based; README.md ("Template language") is the user-facing description of the rules below.

==================  ==============================================================
line                meaning
==================  ==============================================================
``# text``          heading, level 1 (``## `` level 2, ``### `` level 3)
``- text``          bullet item (also ``* text``)
``| a | b |``       table row; consecutive rows form one table, the first is its header
``@chart N``        the N-th chart of ``data.charts`` (1-based) is drawn here
``@pagebreak``      start a new page
blank line          paragraph gap
``\\text``          plain text: the leading backslash is dropped, nothing else is special
anything else       a line of text, wrapped to the page width
==================  ==============================================================

Markers are recognised after leading spaces. In table rows ``\\|`` is a literal ``|`` and
``\\\\`` a literal backslash; a row made only of dashes/colons (``|---|:--:|``) is skipped.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "Block",
    "MarkupError",
    "escape_cell",
    "escape_plain",
    "one_line",
    "parse",
    "pdf_text",
]


class MarkupError(ValueError):
    """The rendered text breaks a limit of the markup (too many rows, columns, a bad @chart)."""


@dataclass
class Block:
    """One element of the report, in document order."""

    kind: str  # "heading" | "text" | "bullet" | "gap" | "table" | "chart" | "pagebreak"
    text: str = ""
    level: int = 0  # heading level 1..3
    rows: list[list[str]] = field(default_factory=list)  # table rows, header first
    chart: int = 0  # 0-based index into data.charts


_HEADING = re.compile(r"(#{1,3}) +(.*)")
_BULLET = re.compile(r"[-*] +(.*)")
_CHART = re.compile(r"@chart +(\S+) *")
_SEPARATOR_CELL = re.compile(r":?-+:?")
_CELL_SPLIT = re.compile(r"\\(.)|(\|)")


def _split_row(line: str) -> list[str]:
    """``| a | b\\|c |`` -> ``["a", "b|c"]``.

    Split on unescaped pipes, then unescape ``\\|`` and ``\\\\``.
    """
    body = line.strip()
    cells: list[str] = []
    current: list[str] = []
    pos = 0
    for match in _CELL_SPLIT.finditer(body):
        current.append(body[pos : match.start()])
        pos = match.end()
        escaped = match.group(1)
        if escaped is None:  # an unescaped pipe ends a cell
            cells.append("".join(current))
            current = []
        elif escaped in "|\\":
            current.append(escaped)
        else:  # any other backslash stays as written
            current.append(match.group(0))
    tail = "".join(current) + body[pos:]
    # The leading pipe opens the row (the text before it is empty); a trailing pipe is optional.
    cells = cells[1:] if cells else []
    if tail.strip():
        cells.append(tail)
    return [cell.strip() for cell in cells]


def parse(
    text: str, *, charts: int, max_table_rows: int, max_table_columns: int, max_cell_chars: int
) -> list[Block]:
    """Split rendered template text into blocks, enforcing the table limits.

    ``charts`` is the number of charts in ``data.charts``; ``@chart N`` must name one of them.
    Raises :class:`MarkupError` when a limit is broken.
    """
    blocks: list[Block] = []
    table: list[list[str]] | None = None
    total_rows = 0
    for lineno, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        line = raw.rstrip()
        stripped = line.lstrip()
        if stripped.startswith("|"):
            cells = _split_row(stripped)
            if cells and all(_SEPARATOR_CELL.fullmatch(c) for c in cells):
                continue  # a Markdown header separator: the first row is the header anyway
            if len(cells) > max_table_columns:
                raise MarkupError(
                    f"line {lineno}: a table row has {len(cells)} cells; the limit is "
                    f"{max_table_columns} columns"
                )
            total_rows += 1
            if total_rows > max_table_rows:
                raise MarkupError(
                    f"line {lineno}: more than {max_table_rows} table rows in the report"
                )
            cells = [
                c if len(c) <= max_cell_chars else c[: max_cell_chars - 1] + "…" for c in cells
            ]
            if table is None:
                table = []
                blocks.append(Block("table", rows=table))
            table.append(cells)
            continue
        table = None
        if not stripped:
            if blocks and blocks[-1].kind != "gap":
                blocks.append(Block("gap"))
            continue
        if stripped.startswith("\\"):
            blocks.append(Block("text", text=stripped[1:]))
            continue
        if m := _HEADING.fullmatch(stripped):
            blocks.append(Block("heading", text=m.group(2), level=len(m.group(1))))
            continue
        if m := _BULLET.fullmatch(stripped):
            blocks.append(Block("bullet", text=m.group(1)))
            continue
        if stripped == "@pagebreak":
            blocks.append(Block("pagebreak"))
            continue
        if m := _CHART.fullmatch(stripped):
            ref = m.group(1)
            if not ref.isdigit() or not 1 <= int(ref) <= charts:
                have = f"has {charts} chart(s)" if charts else "has no charts"
                raise MarkupError(
                    f"line {lineno}: '@chart {ref}' names no chart (data.charts {have}; "
                    "they are numbered from 1)"
                )
            blocks.append(Block("chart", chart=int(ref) - 1))
            continue
        blocks.append(Block("text", text=line))  # keep the indentation of plain text
    while blocks and blocks[-1].kind == "gap":
        blocks.pop()
    return blocks


# --- escaping helpers, exposed to templates as the `cell` and `plain` filters -------------------
_MARKUP_START = re.compile(r"^([ \t]*)(?=[#\-*|@\\])", re.MULTILINE)


def escape_cell(value: object) -> str:
    """Make any value safe inside a table row: ``|`` and ``\\`` escaped, line breaks -> spaces,
    ``None`` -> empty."""
    if value is None:
        return ""
    text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return " ".join(text.splitlines()) if ("\n" in text or "\r" in text) else text


def escape_plain(value: object) -> str:
    """Make text print as written: every line that would start with a marker gets a ``\\``."""
    if value is None:
        return ""
    return _MARKUP_START.sub(r"\1\\", str(value))


def one_line(value: object) -> str:
    """All whitespace runs (line breaks included) -> one space; for headings and bullets."""
    if value is None:
        return ""
    return " ".join(str(value).split())


# --- text the PDF's core fonts can print --------------------------------------------------------
#: The PDF uses the standard Helvetica font with WinAnsi (Windows-1252) encoding.
PDF_ENCODING = "cp1252"

_SUBSTITUTES = {
    "\u2010": "-",  # hyphen
    "\u2011": "-",  # non-breaking hyphen
    "\u2012": "-",  # figure dash
    "\u2015": "—",  # horizontal bar
    "\u2212": "-",  # minus sign
    "\u2043": "-",  # hyphen bullet
    "\u2044": "/",  # fraction slash
    "\u2190": "<-",
    "\u2192": "->",
    "\u2194": "<->",
    "\u21d2": "=>",
    "\u2264": "<=",
    "\u2265": ">=",
    "\u2260": "!=",
    "\u2248": "~",
    "\u221e": "inf",
    "\u2713": "v",
    "\u2714": "v",
    "\u2717": "x",
    "\u2718": "x",
    "\u25cf": "•",
    "\u25aa": "•",
    "\u2219": "•",
    "\u0141": "L",  # Ł (no decomposition in Unicode)
    "\u0142": "l",  # ł
    "\u0110": "D",  # Đ
    "\u0111": "d",  # đ
    "\u0131": "i",  # dotless i
    "\u0126": "H",  # Ħ
    "\u0127": "h",  # ħ
}
#: Characters removed without a trace: zero-width characters and the soft hyphen (printable
#: in WinAnsi, but meant to be invisible).
_INVISIBLE = frozenset("\u00ad\u200b\u200c\u200d\u2060\ufeff\u200e\u200f")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _can_print(char: str) -> bool:
    try:
        char.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        return False
    return not _CONTROL.match(char)


def _fallback(char: str) -> str:
    """What to print for a character the font lacks (never raises)."""
    if char in _SUBSTITUTES:
        return _SUBSTITUTES[char]
    if unicodedata.combining(char):
        return ""  # a combining mark that NFC could not attach to its letter
    decomposed = unicodedata.normalize("NFKD", char)
    kept = "".join(c for c in decomposed if not unicodedata.combining(c))
    if kept and kept != char and all(_can_print(c) for c in kept):
        return kept  # é-like letters, ligatures (ﬁ -> fi), full-width forms, thin spaces
    if unicodedata.category(char) == "Zs":
        return " "
    return "?"


def pdf_text(text: str) -> tuple[str, int]:
    """``text`` made printable with the PDF's font, and how many characters were changed.

    Rules (documented in README.md, "Characters"): text is NFC-normalised; tabs become four
    spaces; Windows-1252 characters print as they are; control characters and invisible
    characters (zero-width, soft hyphen) are dropped; a few symbols get ASCII stand-ins
    (minus sign U+2212 -> ``-``, ``≤`` -> ``<=``, ``→`` -> ``->``, ``ł`` -> ``l``); other
    letters lose their accents when that makes them printable (``ő`` -> ``o``, ``ﬁ`` -> ``fi``);
    anything else (Greek, Cyrillic, CJK, emoji, ...) becomes ``?``. Line breaks are kept.
    """
    if "\t" in text:
        text = text.replace("\t", "    ")
    try:
        text.encode(PDF_ENCODING)
    except UnicodeEncodeError:
        pass
    else:
        if not _CONTROL.search(text.replace("\n", " ")) and not _INVISIBLE.intersection(text):
            return text, 0
    text = unicodedata.normalize("NFC", text)
    out: list[str] = []
    changed = 0
    for char in text:
        if char == "\n":
            out.append(char)
        elif char in _INVISIBLE or _CONTROL.match(char):
            changed += 1
        elif _can_print(char):
            out.append(char)
        else:
            changed += 1
            out.append(_fallback(char))
    return "".join(out), changed
