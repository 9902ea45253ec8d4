"""The PDF builder: report blocks (see :mod:`.markup`) and charts -> PDF bytes, with fpdf2.

Imported lazily by the worker (it imports fpdf2). Layout: A4 portrait, 15 mm margins, the
standard Helvetica font (WinAnsi / Windows-1252 encoding, nothing embedded), a footer with the
title and "Page n of N" on every page. Text is wrapped here (not with ``multi_cell``, which is
much slower for large reports); tables and charts are drawn with fpdf2's primitives (``cell``,
``rect``, ``line``, ``polyline``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from fpdf import FPDF
from fpdf.enums import XPos, YPos

from innosystem_report_generation.markup import Block, pdf_text

__all__ = ["BuildError", "BuiltReport", "build"]

FONT = "helvetica"
MARGIN = 15.0
BOTTOM_MARGIN = 18.0
BODY_SIZE, BODY_LINE = 10.0, 5.0
HEADING_STYLE = {1: (15.0, 7.5), 2: (12.5, 6.5), 3: (11.0, 5.5)}  # level -> (size, line height)
TABLE_SIZE, TABLE_LINE, CELL_PAD_X, CELL_PAD_Y = 8.5, 4.0, 1.2, 0.9
CHART_HEIGHT = 62.0  # the plot area; title, tick labels and legend come on top
MAX_LEGEND_CHARS = 40

PALETTE = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (140, 86, 75),
    (227, 119, 194),
    (127, 127, 127),
    (188, 189, 34),
    (23, 190, 207),
]


class BuildError(Exception):
    """The report cannot be built within the limits (pages, time)."""


@dataclass
class BuiltReport:
    pdf: bytes
    pages: int
    tables: int
    charts: int
    replaced_characters: int


class _Doc(FPDF):
    footer_title = ""

    def footer(self) -> None:
        # The page-count alias is active only here, so "{nb}" in the report text stays as written.
        previous = self.str_alias_nb_pages
        self.set_y(-12)
        self.set_draw_color(200)
        self.set_line_width(0.2)
        self.line(self.l_margin, self.get_y() - 1, self.w - self.r_margin, self.get_y() - 1)
        self.set_font(FONT, "", 8)
        self.set_text_color(110)
        self.c_margin = 0
        self.str_alias_nb_pages = None
        self.cell(self.epw * 0.7, 5, self.footer_title)
        self.str_alias_nb_pages = "{nb}"
        self.set_x(self.l_margin)
        self.cell(self.epw, 5, f"Page {self.page_no()} of {{nb}}", align="R")
        self.str_alias_nb_pages = previous
        self.set_text_color(0)


class _Builder:
    def __init__(self, title: str, charts: list[Any], *, max_pages: int, seconds: float) -> None:
        self.max_pages = max_pages
        self.deadline = time.monotonic() + seconds
        self.seconds = seconds
        self.charts_spec = charts
        self.replaced = 0
        self.tables = 0
        self.charts = 0
        self._widths: dict[tuple[str, float], dict[str, float]] = {}
        doc = _Doc(orientation="P", unit="mm", format="A4")
        doc.core_fonts_encoding = "windows-1252"
        doc.str_alias_nb_pages = None  # see _Doc.footer
        doc.set_margins(MARGIN, MARGIN, MARGIN)
        doc.set_auto_page_break(True, BOTTOM_MARGIN)
        doc.set_title(title)
        doc.set_creator("InnoSystem report-gen-v1")
        doc.set_producer("fpdf2")
        self.doc = doc
        self.title, _ = self.text(title.replace("\n", " "))
        footer = self.title
        doc.footer_title = footer if len(footer) <= 90 else footer[:89] + "…"
        doc.add_page()

    # -- helpers --------------------------------------------------------------------------------
    def text(self, value: str) -> tuple[str, int]:
        printable, changed = pdf_text(value)
        self.replaced += changed
        return printable, changed

    def check(self) -> None:
        if self.doc.page > self.max_pages:
            raise BuildError(f"the report would have more than {self.max_pages} pages")
        if time.monotonic() > self.deadline:
            raise BuildError(f"building the PDF took longer than {self.seconds:g} s")

    def font(self, style: str, size: float) -> None:
        self.doc.set_font(FONT, style, size)

    def width(self, text: str, style: str, size: float) -> float:
        """Width of ``text`` in Helvetica ``style``/``size`` (whatever font is current)."""
        table = self._widths.setdefault((style, size), {})
        missing = set(text).difference(table)
        if missing:
            doc = self.doc
            current = (doc.font_style, doc.font_size_pt)
            if current != (style, size):
                doc.set_font(FONT, style, size)
            for char in missing:
                table[char] = doc.get_string_width(char)
            if current != (style, size):
                doc.set_font(FONT, *current)
        return sum(map(table.__getitem__, text))

    def wrap(self, text: str, width: float, style: str, size: float) -> list[str]:
        """Greedy word wrap; a word wider than the line is split between characters."""
        if self.width(text, style, size) <= width:
            return [text]
        space = self.width(" ", style, size)
        lines: list[str] = []
        line: list[str] = []
        line_w = 0.0
        for word in text.split(" "):
            word_w = self.width(word, style, size)
            extra = space if line else 0.0
            if line_w + extra + word_w <= width:
                line.append(word)
                line_w += extra + word_w
                continue
            if line:
                lines.append(" ".join(line))
                line, line_w = [], 0.0
            while word_w > width:  # split an over-long word
                cut, cut_w = 0, 0.0
                for char in word:
                    char_w = self.width(char, style, size)
                    if cut and cut_w + char_w > width:
                        break
                    cut += 1
                    cut_w += char_w
                lines.append(word[:cut])
                word = word[cut:]
                word_w = self.width(word, style, size)
            line, line_w = [word], word_w
        if line:
            lines.append(" ".join(line))
        return lines

    def space_left(self) -> float:
        return self.doc.page_break_trigger - self.doc.get_y()

    def new_page(self) -> None:
        self.doc.add_page()
        self.check()

    def at_page_top(self) -> bool:
        return self.doc.get_y() <= self.doc.t_margin + 0.01

    def put(self, text: str, x: float, top: float, w: float, line_h: float, align: str) -> None:
        """One line of text in the box (x, top, w, line_h), with the current font.

        ``FPDF.text`` is several times faster than ``FPDF.cell`` for large tables.
        """
        if not text:
            return
        doc = self.doc
        if align != "L":
            text_w = self.width(text, doc.font_style, doc.font_size_pt)
            x = x + w - text_w if align == "R" else x + (w - text_w) / 2
        doc.text(x, top + 0.5 * line_h + 0.3 * doc.font_size, text)

    def lines(self, lines: list[str], line_h: float, x: float, w: float, align: str = "L") -> None:
        doc = self.doc
        for line in lines:
            if self.space_left() < line_h:
                self.new_page()
            self.put(line, x, doc.get_y(), w, line_h, align)
            doc.set_y(doc.get_y() + line_h)

    # -- blocks ---------------------------------------------------------------------------------
    def heading_title(self) -> None:
        doc = self.doc
        self.font("B", 18)
        self.lines(self.wrap(self.title, doc.epw, "B", 18), 8.5, doc.l_margin, doc.epw)
        doc.set_draw_color(60)
        doc.set_line_width(0.4)
        y = doc.get_y() + 1.5
        doc.line(doc.l_margin, y, doc.w - doc.r_margin, y)
        doc.set_y(y + 5)

    def heading(self, block: Block) -> None:
        size, line_h = HEADING_STYLE[block.level]
        text, _ = self.text(block.text)
        self.font("B", size)
        lines = self.wrap(text, self.doc.epw, "B", size)
        if not self.at_page_top():
            self.doc.set_y(self.doc.get_y() + (3.0 if block.level == 1 else 2.0))
        if self.space_left() < line_h * len(lines) + 2 * BODY_LINE:  # keep with what follows
            self.new_page()
        self.lines(lines, line_h, self.doc.l_margin, self.doc.epw)
        self.doc.set_y(self.doc.get_y() + 1.0)

    def paragraph_line(self, raw: str) -> None:
        text, _ = self.text(raw)
        self.font("", BODY_SIZE)
        body = text.lstrip(" ")
        indent = min(self.width(text[: len(text) - len(body)], "", BODY_SIZE), self.doc.epw / 2)
        x = self.doc.l_margin + indent
        w = self.doc.epw - indent
        self.lines(self.wrap(body, w, "", BODY_SIZE), BODY_LINE, x, w)

    def bullet(self, raw: str) -> None:
        text, _ = self.text(raw)
        self.font("", BODY_SIZE)
        doc = self.doc
        lines = self.wrap(text, doc.epw - 6, "", BODY_SIZE)
        if self.space_left() < BODY_LINE:
            self.new_page()
        self.put("•", doc.l_margin + 1.5, doc.get_y(), 4.5, BODY_LINE, "L")
        self.lines(lines, BODY_LINE, doc.l_margin + 6, doc.epw - 6)

    def gap(self) -> None:
        if not self.at_page_top():
            self.doc.set_y(min(self.doc.get_y() + 3.0, self.doc.page_break_trigger))

    def pagebreak(self) -> None:
        if not self.at_page_top():
            self.new_page()

    def table(self, rows: list[list[str]]) -> None:
        doc = self.doc
        self.tables += 1
        columns = max((len(r) for r in rows), default=0)
        if columns == 0:
            return
        cells = []
        for row in rows:
            printable = [self.text(c)[0] for c in row]
            cells.append(printable + [""] * (columns - len(printable)))
        header, body = cells[0], cells[1:]
        numeric = [
            any(r[i] for r in body) and all(_is_number(r[i]) for r in body if r[i])
            for i in range(columns)
        ]
        # Column widths in proportion to their content (each capped), filling the page width.
        natural = []
        for i in range(columns):
            widest = max(
                self.width(header[i], "B", TABLE_SIZE),
                max((self.width(r[i], "", TABLE_SIZE) for r in body[:500]), default=0.0),
            )
            natural.append(min(max(widest, 8.0), 70.0) + 2 * CELL_PAD_X)
        scale = doc.epw / sum(natural)
        widths = [w * scale for w in natural]
        max_lines = max(1, int((doc.page_break_trigger - doc.t_margin - 30) / TABLE_LINE))

        def layout(row: list[str], style: str) -> tuple[list[list[str]], float]:
            wrapped = []
            for value, w in zip(row, widths, strict=True):
                lines = self.wrap(value, w - 2 * CELL_PAD_X, style, TABLE_SIZE) if value else [""]
                if len(lines) > max_lines:
                    lines = lines[:max_lines]
                    lines[-1] = lines[-1][:-1] + "…" if lines[-1] else "…"
                wrapped.append(lines)
            return wrapped, max(len(x) for x in wrapped) * TABLE_LINE + 2 * CELL_PAD_Y

        def draw(wrapped: list[list[str]], height: float, style: str, fill: int | None) -> None:
            self.font(style, TABLE_SIZE)
            doc.set_draw_color(170)
            doc.set_line_width(0.15)
            y = doc.get_y()
            x = doc.l_margin
            for i, (lines, w) in enumerate(zip(wrapped, widths, strict=True)):
                if fill is not None:
                    doc.set_fill_color(fill)
                doc.rect(x, y, w, height, style="DF" if fill is not None else "D")
                align = "R" if numeric[i] else "L"
                for n, line in enumerate(lines):
                    top = y + CELL_PAD_Y + n * TABLE_LINE
                    self.put(line, x + CELL_PAD_X, top, w - 2 * CELL_PAD_X, TABLE_LINE, align)
                x += w
            doc.set_xy(doc.l_margin, y + height)

        head, head_h = layout(header, "B")
        doc.set_auto_page_break(False, BOTTOM_MARGIN)
        try:
            if not self.at_page_top():
                doc.set_y(doc.get_y() + 1.0)
            first_h = head_h + (layout(body[0], "")[1] if body else 0.0)
            if self.space_left() < first_h:
                self.new_page()
            draw(head, head_h, "B", 225)
            for n, row in enumerate(body):
                wrapped, height = layout(row, "")
                if self.space_left() < height:
                    self.new_page()
                    draw(head, head_h, "B", 225)
                draw(wrapped, height, "", 246 if n % 2 else None)
                if n % 200 == 199:
                    self.check()
        finally:
            doc.set_auto_page_break(True, BOTTOM_MARGIN)
        doc.set_y(doc.get_y() + 2.0)

    def chart(self, index: int) -> None:
        spec = self.charts_spec[index]
        self.charts += 1
        _Chart(self, spec, index).draw()

    def build(self, blocks: list[Block]) -> BuiltReport:
        self.heading_title()
        placed = set()
        for block in blocks:
            kind = block.kind
            if kind == "text":
                self.paragraph_line(block.text)
            elif kind == "gap":
                self.gap()
            elif kind == "heading":
                self.heading(block)
            elif kind == "bullet":
                self.bullet(block.text)
            elif kind == "table":
                self.table(block.rows)
            elif kind == "chart":
                placed.add(block.chart)
                self.chart(block.chart)
            elif kind == "pagebreak":
                self.pagebreak()
            self.check()
        for index in range(len(self.charts_spec)):  # charts the template did not place
            if index not in placed:
                self.chart(index)
                self.check()
        self.doc.str_alias_nb_pages = "{nb}"  # let output() fill in the page count
        data = bytes(self.doc.output())
        return BuiltReport(
            pdf=data,
            pages=self.doc.pages_count,
            tables=self.tables,
            charts=self.charts,
            replaced_characters=self.replaced,
        )


def _is_number(text: str) -> bool:
    cleaned = text.replace(",", "").replace("%", "").replace("€", "").replace("$", "").strip()
    try:
        float(cleaned)
    except ValueError:
        return False
    return True


# --- charts ------------------------------------------------------------------------------------
def _nice_step(span: float, target: int = 5) -> float:
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _ticks(lo: float, hi: float) -> list[float]:
    if hi - lo <= 0:
        pad = abs(lo) * 0.1 or 1.0
        lo, hi = lo - pad, hi + pad
    step = _nice_step(hi - lo)
    start = math.floor(lo / step + 1e-9) * step
    end = math.ceil(hi / step - 1e-9) * step
    count = round((end - start) / step)
    return [start + i * step for i in range(count + 1)]


def _tick_label(value: float, step: float) -> str:
    if abs(value) < abs(step) * 1e-6:
        value = 0.0
    if max(abs(value), abs(step)) >= 1e7 or abs(step) < 1e-4:
        return f"{value:.3g}"
    decimals = 0
    while decimals < 6 and abs(round(step, decimals) - step) > abs(step) * 1e-9:
        decimals += 1
    return f"{value:,.{decimals}f}"


def _x_label(value: Any) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return str(value)


class _Chart:
    def __init__(self, builder: _Builder, spec: Any, index: int) -> None:
        self.b = builder
        self.doc = builder.doc
        self.spec = spec
        self.index = index

    def label(self, text: Any, limit: int = 60) -> str:
        printable, _ = self.b.text(str(text))
        return printable if len(printable) <= limit else printable[: limit - 1] + "…"

    def fit(self, text: str, width: float, size: float) -> str:
        if self.b.width(text, "", size) <= width:
            return text
        while text and self.b.width(text + "…", "", size) > width:
            text = text[:-1]
        return text + "…" if text else ""

    def draw(self) -> None:
        b, doc, spec = self.b, self.doc, self.spec
        series = spec.series
        bar = spec.type == "bar"
        numeric_x = not bar and all(not isinstance(x, str) for s in series for x, _ in s.points)
        # Legend rows (swatch + name), laid out before drawing to know the height.
        b.font("", 8)
        names = [self.label(s.name, MAX_LEGEND_CHARS) for s in series]
        legend_rows: list[list[int]] = [[]]
        used = 0.0
        for i, name in enumerate(names):
            w = 6 + b.width(name, "", 8) + 6
            if legend_rows[-1] and used + w > doc.epw:
                legend_rows.append([])
                used = 0.0
            legend_rows[-1].append(i)
            used += w
        title = self.label(spec.title or f"Chart {self.index + 1}", 120)
        x_axis_label = self.label(spec.x_label, 80) if spec.x_label else ""
        total_h = 7 + CHART_HEIGHT + 6 + (5 if x_axis_label else 0) + 5 * len(legend_rows) + 4

        doc.set_auto_page_break(False, BOTTOM_MARGIN)
        try:
            if not b.at_page_top():
                doc.set_y(doc.get_y() + 2)
            if b.space_left() < total_h:
                b.new_page()
            top = doc.get_y()
            b.font("B", 10)
            doc.c_margin = 0
            doc.set_x(doc.l_margin)
            doc.cell(doc.epw, 6, self.fit(title, doc.epw, 10), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
            left = doc.l_margin + (20 if spec.y_label else 15)
            right = doc.w - doc.r_margin - 3
            plot_top = top + 8
            plot_bottom = plot_top + CHART_HEIGHT
            ys = [y for s in series for _, y in s.points]
            lo, hi = min(ys), max(ys)
            if bar:
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            yticks = _ticks(lo, hi)
            ymin, ymax = yticks[0], yticks[-1]
            ystep = yticks[1] - yticks[0] if len(yticks) > 1 else 1.0

            def ypos(v: float) -> float:
                return plot_bottom - (v - ymin) / (ymax - ymin) * CHART_HEIGHT

            # grid and y tick labels
            b.font("", 7)
            doc.set_line_width(0.1)
            doc.set_draw_color(215)
            doc.set_text_color(80)
            for t in yticks:
                y = ypos(t)
                doc.line(left, y, right, y)
                doc.set_xy(doc.l_margin, y - 2)
                doc.cell(left - doc.l_margin - 1.5, 4, _tick_label(t, ystep), align="R")
            if spec.y_label:
                ylabel = self.fit(self.label(spec.y_label, 80), CHART_HEIGHT, 7)
                mid = (plot_top + plot_bottom) / 2
                x = doc.l_margin + 2.5
                with doc.rotation(90, x, mid):
                    w = b.width(ylabel, "", 7)
                    doc.text(x - w / 2, mid, ylabel)

            # x axis
            if numeric_x:
                xs = [float(x) for s in series for x, _ in s.points]
                xticks = _ticks(min(xs), max(xs))
                xmin, xmax = xticks[0], xticks[-1]
                xstep = xticks[1] - xticks[0] if len(xticks) > 1 else 1.0

                def xpos(v: Any) -> float:
                    return left + (float(v) - xmin) / (xmax - xmin) * (right - left)

                for t in xticks:
                    x = xpos(t)
                    doc.set_draw_color(120)
                    doc.line(x, plot_bottom, x, plot_bottom + 1)
                    label = _tick_label(t, xstep)
                    doc.set_xy(x - 15, plot_bottom + 1.2)
                    doc.cell(30, 4, label, align="C")
            else:
                categories: list[str] = []
                index: dict[str, int] = {}
                for s in series:
                    for x, _ in s.points:
                        key = _x_label(x)
                        if key not in index:
                            index[key] = len(categories)
                            categories.append(key)
                slot = (right - left) / max(len(categories), 1)

                def xpos(v: Any) -> float:
                    return left + (index[_x_label(v)] + 0.5) * slot

                label_w = max(b.width(self.label(c, 30), "", 7) for c in categories) + 2
                every = max(1, math.ceil(label_w / slot)) if label_w > slot else 1
                every = min(every, max(1, len(categories)))
                for i, cat in enumerate(categories):
                    if i % every:
                        continue
                    x = left + (i + 0.5) * slot
                    doc.set_draw_color(120)
                    doc.line(x, plot_bottom, x, plot_bottom + 1)
                    text = self.fit(self.label(cat, 30), slot * every - 1, 7)
                    doc.set_xy(x - slot * every / 2, plot_bottom + 1.2)
                    doc.cell(slot * every, 4, text, align="C")
            doc.set_text_color(0)

            # data
            if bar:
                zero = ypos(0.0)
                group = slot * 0.8
                bar_w = group / len(series)
                for si, s in enumerate(series):
                    doc.set_fill_color(*PALETTE[si % len(PALETTE)])
                    for x, y in s.points:
                        x0 = left + index[_x_label(x)] * slot + slot * 0.1 + si * bar_w
                        y0, y1 = sorted((zero, ypos(y)))
                        if y1 - y0 > 0.01:
                            doc.rect(x0, y0, bar_w * 0.92, y1 - y0, style="F")
            else:
                for si, s in enumerate(series):
                    color = PALETTE[si % len(PALETTE)]
                    doc.set_draw_color(*color)
                    doc.set_fill_color(*color)
                    doc.set_line_width(0.45)
                    points = list(s.points)
                    if numeric_x:
                        points.sort(key=lambda p: float(p[0]))
                    coords = [(xpos(x), ypos(y)) for x, y in points]
                    if len(coords) > 1:
                        doc.polyline(coords)
                    if len(coords) <= 60:
                        for cx, cy in coords:
                            doc.rect(cx - 0.6, cy - 0.6, 1.2, 1.2, style="F")

            # axes
            doc.set_draw_color(60)
            doc.set_line_width(0.25)
            doc.line(left, plot_top, left, plot_bottom)
            base = ypos(0.0) if ymin < 0 < ymax else plot_bottom
            doc.line(left, base, right, base)

            y = plot_bottom + 6
            if x_axis_label:
                b.font("", 7)
                doc.set_xy(left, y)
                doc.cell(right - left, 4, self.fit(x_axis_label, right - left, 7), align="C")
                y += 5
            # legend
            b.font("", 8)
            for row in legend_rows:
                x = doc.l_margin
                for i in row:
                    doc.set_fill_color(*PALETTE[i % len(PALETTE)])
                    doc.rect(x, y + 0.8, 3.5, 3.5, style="F")
                    doc.set_xy(x + 5, y)
                    doc.cell(b.width(names[i], "", 8) + 1, 5, names[i])
                    x += 6 + b.width(names[i], "", 8) + 6
                y += 5
            doc.set_xy(doc.l_margin, y + 3)
        finally:
            doc.set_auto_page_break(True, BOTTOM_MARGIN)
            doc.set_draw_color(0)
            doc.set_fill_color(255)
            doc.set_line_width(0.2)


def build(
    title: str,
    blocks: list[Block],
    charts: list[Any],
    *,
    max_pages: int,
    seconds: float,
) -> BuiltReport:
    """Lay out ``blocks`` (and every chart of ``charts`` not placed by an ``@chart`` line) under
    ``title``; :class:`BuildError` if the report breaks the page or time limit."""
    return _Builder(title, charts, max_pages=max_pages, seconds=seconds).build(blocks)
