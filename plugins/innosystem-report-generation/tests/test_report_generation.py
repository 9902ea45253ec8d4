"""Tests of report-gen-v1: real PDFs (read back with pypdf), the sandbox, the limits, called
directly (no server) with a fake artifact store on ``ctx.artifacts``."""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
from innosystem import JobContext, PermanentError, jsonsafe
from innosystem.errors import ValidationFailed

import innosystem_report_generation as rg
from innosystem_report_generation import ReportGeneration, markup

pypdf = pytest.importorskip("pypdf")

PROC = ReportGeneration()
_NAME = re.compile(r"[A-Za-z0-9._-]{1,255}")


class FakeArtifacts:
    """The ``ctx.artifacts.put`` contract, in memory."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[bytes, str]] = {}

    def put(self, name: str, data: bytes, content_type: str) -> dict[str, Any]:
        assert _NAME.fullmatch(name) and name not in (".", "..")
        assert isinstance(data, bytes)
        self.files[name] = (data, content_type)
        return {
            "name": name,
            "content_type": content_type,
            "size_bytes": len(data),
            "sha256": hashlib.sha256(data).hexdigest(),
        }


def make_ctx() -> JobContext:
    ctx = JobContext(
        job_id=uuid4(), attempt=1, job_type_id=uuid4(), customer_id=uuid4(), runner_id="test"
    )
    ctx.artifacts = FakeArtifacts()
    return ctx


def run(data: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """validate_input (as at submit) then process (as in the worker); the result and the PDF."""
    validated = PROC.validate_input(data)
    ctx = make_ctx()
    result = PROC.process(ctx, validated)
    json.dumps(result, allow_nan=False)  # what the platform demands of every result
    assert jsonsafe.problems(result, "result") == []
    name = result["artifact"]["name"]
    pdf_bytes, content_type = ctx.artifacts.files[name]
    assert content_type == "application/pdf"
    assert result["artifact"] == {
        "name": name,
        "content_type": "application/pdf",
        "size_bytes": len(pdf_bytes),
        "sha256": hashlib.sha256(pdf_bytes).hexdigest(),
    }
    return result, pdf_bytes


def pdf_pages(pdf_bytes: bytes) -> list[str]:
    reader = pypdf.PdfReader(io.BytesIO(pdf_bytes))
    return [page.extract_text() for page in reader.pages]


def pdf_text(pdf_bytes: bytes) -> str:
    return "\n".join(pdf_pages(pdf_bytes))


def refused(data: dict[str, Any]) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        PROC.validate_input(data)
    exc = info.value
    assert exc.status == 422
    assert exc.details and all(d["field"].startswith("input_data") for d in exc.details)
    return exc


def fails(data: dict[str, Any]) -> str:
    """The job's permanent failure message (validate_input passes, process fails)."""
    validated = PROC.validate_input(data)
    with pytest.raises(PermanentError) as info:
        PROC.process(make_ctx(), validated)
    message = str(info.value)
    assert "Traceback" not in message and 'File "' not in message
    return message


SALES_TEMPLATE = """\
# Sales in {{ data.year }}
Total revenue: {{ data.rows|sum(attribute='amount')|number(2) }} EUR.
{# comments and whitespace control work as usual #}

## By region
| Region | Amount | Note |
|---|---:|---|
{% for row in data.rows %}
| {{ row.region|cell }} | {{ row.amount|number(2) }} | {{ row.note|default('')|cell }} |
{% endfor %}

{% for row in data.rows if row.amount > 1000 %}
- {{ row.region }} is above 1,000
{% endfor %}
"""
SALES_DATA = {
    "year": 2024,
    "rows": [
        {"region": "North", "amount": 1234.5, "note": "best | ever"},
        {"region": "South", "amount": 99},
        {"region": "East", "amount": 1500.25},
    ],
}


# --- real PDFs ---------------------------------------------------------------------------------
def test_inline_template_renders_a_real_pdf() -> None:
    result, pdf_bytes = run(
        {"template": SALES_TEMPLATE, "title": "Quarterly Sales Report", "data": SALES_DATA}
    )
    assert pdf_bytes.startswith(b"%PDF-")
    assert result["pages"] == 1
    assert result["title"] == "Quarterly Sales Report"
    assert (result["tables"], result["charts"], result["replaced_characters"]) == (1, 0, 0)
    assert result["artifact"]["name"] == "report.pdf"
    text = pdf_text(pdf_bytes)
    assert "Quarterly Sales Report" in text  # title
    assert "Sales in 2024" in text  # heading
    assert "By region" in text
    assert "Total revenue: 2,833.75 EUR." in text
    assert "1,234.50" in text and "North" in text  # table cells
    assert "best | ever" in text  # an escaped pipe inside a cell
    assert "---" not in text  # the Markdown separator row is not printed
    assert "North is above 1,000" in text and "East is above 1,000" in text  # bullets
    assert "Page 1 of 1" in text  # footer
    reader = pypdf.PdfReader(io.BytesIO(pdf_bytes))
    assert reader.metadata.title == "Quarterly Sales Report"


def test_builtin_table_report_spans_pages_and_repeats_the_header() -> None:
    rows = [[f"item {i}", i * 2.5, f"2024-01-{i % 28 + 1:02d}"] for i in range(150)]
    data = {
        "intro": "Stock at the end of the quarter.\n# this line is text, not a heading",
        "tables": [
            {"title": "Stock", "columns": ["Name", "Amount", "Date"], "rows": rows},
            {"columns": ["Pipe | column"], "rows": [["a | b"], [None]]},
        ],
        "notes": "- not a bullet either",
    }
    result, pdf_bytes = run(
        {"template_name": "table-report", "title": "Inventory", "data": data, "filename": "inv.pdf"}
    )
    assert result["artifact"]["name"] == "inv.pdf"
    assert result["tables"] == 2
    pages = pdf_pages(pdf_bytes)
    assert result["pages"] == len(pages) >= 3
    assert all("Amount" in page for page in pages[:-1])  # header row on every page of the table
    text = "\n".join(pages)
    assert "item 0" in text and "item 149" in text and "372.5" in text
    assert "Pipe | column" in text and "a | b" in text
    assert "# this line is text, not a heading" in text
    assert "- not a bullet either" in text
    assert f"Page {len(pages)} of {len(pages)}" in pages[-1]


def test_builtin_summary() -> None:
    data = {
        "intro": "The month in numbers.",
        "metrics": {"Orders": 1532, "Revenue (EUR)": 48210.5, "Best day": "Friday"},
        "sections": [
            {"heading": "Highlights", "text": "A good month.", "bullets": ["New store", "More"]},
            {"heading": "Risks"},
        ],
    }
    result, pdf_bytes = run({"template_name": "summary", "title": "Monthly summary", "data": data})
    assert (result["tables"], result["charts"]) == (1, 0)
    text = pdf_text(pdf_bytes)
    for needle in ("Monthly summary", "Key figures", "1,532", "48,210.5", "Friday", "Highlights"):
        assert needle in text
    assert "New store" in text and "Risks" in text


def test_charts_are_drawn_and_counted() -> None:
    template = "# With charts\nBefore.\n@chart 2\nBetween.\n"
    data = {
        "charts": [
            {
                "type": "line",
                "title": "Trend",
                "x_label": "day",
                "y_label": "visits",
                "series": [
                    {"name": "web", "points": [[1, 10], [2, 14.5], [3, 9], [4, 20]]},
                    {"name": "app", "points": [[1, 3], [2, 5], [4, 8]]},
                ],
            },
            {
                "type": "bar",
                "title": "Per region",
                "series": [{"name": "2024", "points": [["North", 5], ["South", -2]]}],
            },
        ]
    }
    result, pdf_bytes = run({"template": template, "title": "Charts", "data": data})
    assert result["charts"] == 2  # chart 2 placed by @chart, chart 1 appended at the end
    assert result["tables"] == 0
    text = pdf_text(pdf_bytes)
    # @chart 2 is drawn where it stands, chart 1 (not placed) after the text
    assert text.index("Before.") < text.index("Per region") < text.index("Between.")
    assert text.index("Between.") < text.index("Trend")
    for needle in ("North", "South", "web", "app", "day", "visits"):
        assert needle in text
    reader = pypdf.PdfReader(io.BytesIO(pdf_bytes))
    content = b"".join(page.get_contents().get_data() for page in reader.pages)
    assert re.search(
        rb"-?[\d.]+ -?[\d.]+ -?[\d.]+ -?[\d.]+ re\b", content
    )  # bars, markers, swatches
    assert re.search(rb"[\d.]+ [\d.]+ l\b", content)  # polylines and axes


def test_nb_alias_in_the_text_stays_literal() -> None:
    _, pdf_bytes = run({"template": "Pages: {nb}\n@pagebreak\nSecond page", "title": "Alias {nb}"})
    pages = pdf_pages(pdf_bytes)
    assert len(pages) == 2
    assert "Pages: {nb}" in pages[0] and "Page 1 of 2" in pages[0]
    assert "Second page" in pages[1] and "Page 2 of 2" in pages[1]


def test_non_latin_text_is_replaced_not_a_crash() -> None:
    template = "# Zoë in Łódź\n{{ data.text }}\n| Name | Город |\n| {{ data.name }} | 東京 |\n"
    greek, minus, en_dash = "\u0395\u03bb\u03bb\u03ac\u03b4\u03b1", "\u2212", "\u2013"
    text = f"{greek} 😀 {minus}5 ≤ 6 → ﬁne “quoted” {en_dash} 10 € ő\u200b\ttab"
    data = {"text": text, "name": "Ådne"}
    result, pdf_bytes = run({"template": template, "title": "Ünïcödé → tést", "data": data})
    text = pdf_text(pdf_bytes)
    assert "Zoë in Lódz" in text  # Ł -> L, ź -> z
    assert f"?????? ? -5 <= 6 -> fine “quoted” {en_dash} 10 € o" in text
    assert "tab" in text
    assert "Ådne" in text and "??" in text  # Cyrillic header and CJK cell
    assert "Ünïcödé -> tést" in text
    # 2 in the heading (Ł ź), 13 in the text (6 Greek letters, emoji, minus, ≤, →, ﬁ, ő, the
    # zero-width space), 5 Cyrillic letters, 2 CJK characters, and → in the title
    assert result["replaced_characters"] == 2 + 13 + 5 + 2 + 1


def test_pdf_text_rules() -> None:
    winansi = "plain ASCII, café, 10 €, “quotes” \u2013 … œ Ž ™"
    assert markup.pdf_text(winansi) == (winansi, 0)
    assert markup.pdf_text("e\u0301") == ("é", 0)  # NFC composes it first
    assert markup.pdf_text("ﬁ ő Ł\u2009x") == ("fi o L x", 4)
    assert markup.pdf_text("a\x00b\x1bc\u200bd\u00ade") == ("abcde", 4)
    assert markup.pdf_text("Ωmega 👍") == ("?mega ?", 2)
    assert markup.pdf_text("a\tb\nc") == ("a    b\nc", 0)


def test_markup_parser() -> None:
    text = (
        "# H1\n## H2\n### H3\n#### four hashes is text\n#nospace\n- item\n* star\n"
        "\\# escaped\n  indented text\n\n\n| a | b\\|c | d\\\\ |\n|:--|--:|---|\n| 1 |\n"
        "after\n@pagebreak\n@chart 1\n\n"
    )
    blocks = markup.parse(text, charts=1, max_table_rows=10, max_table_columns=5, max_cell_chars=50)
    kinds = [(b.kind, b.text or b.level or b.chart) for b in blocks]
    assert kinds == [
        ("heading", "H1"),
        ("heading", "H2"),
        ("heading", "H3"),
        ("text", "#### four hashes is text"),
        ("text", "#nospace"),
        ("bullet", "item"),
        ("bullet", "star"),
        ("text", "# escaped"),
        ("text", "  indented text"),
        ("gap", 0),
        ("table", 0),
        ("text", "after"),
        ("pagebreak", 0),
        ("chart", 0),
    ]
    assert [b.level for b in blocks[:3]] == [1, 2, 3]
    assert blocks[10].rows == [["a", "b|c", "d\\"], ["1"]]
    limits = {"charts": 0, "max_table_rows": 2, "max_table_columns": 2, "max_cell_chars": 10}
    with pytest.raises(markup.MarkupError, match="3 cells; the limit is 2 columns"):
        markup.parse("| 1 | 2 | 3 |", **limits)
    with pytest.raises(markup.MarkupError, match="line 3: more than 2 table rows"):
        markup.parse("|a|\n|b|\n|c|", **limits)
    long = markup.parse("| " + "x" * 20 + " |", **limits)
    assert long[0].rows == [["x" * 9 + "…"]]
    assert markup.escape_cell("a|b\\c\nd") == "a\\|b\\\\c d"
    assert markup.escape_plain("# h\nok\n  - b") == "\\# h\nok\n  \\- b"


# --- the sandbox -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ joiner.__init__.__globals__['os'] }}",
        "{{ namespace.__init__.__globals__ }}",
        "{{ range.__globals__ }}",
        "{% for x in [1] %}{{ loop.__class__.__base__ }}{% endfor %}",
        "{{ self._TemplateReference__context }}",
        "{{ ''|attr('__class__') }}",
        "{{ ''['__class__'] }}",
        "{{ '{0.__class__}'.format(1) }}",
        "{{ data.rows.append(1) }}",
        "{{ data.update({'x': 1}) }}",
        "{{ ','.join(['a', 'b']) }}",
        "{{ (data.rows|map('string')).gi_frame }}",
    ],
)
def test_sandbox_escapes_fail_the_job_permanently(template: str) -> None:
    message = fails({"template": template, "title": "x", "data": {"rows": [1]}})
    assert message.startswith("template tried to access an unsafe attribute"), message


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("{{ 'x' * 1000000000 }}", "size limit"),
        ("{{ [0] * 1000000000 }}", "size limit"),
        ("{{ 2 ** 100000 }}", "larger than 2**4000"),
        ("{{ '%999999999d' % 1 }}", "width or precision"),
        ("{{ '%999999999d'|format(1) }}", "width or precision"),
        ("{{ 'x'|center(1000000000) }}", "center width"),
        ("{{ [1]|batch(1000000000, 0)|list }}", "batch size"),
        ("{{ [1]|slice(1000000000, 0)|list }}", "slice count"),
        ("{{ ('ab ' * 1000)|wordwrap(1, wrapstring='x' * 1000) }}", "wordwrap wrapstring"),
        ("{{ (['x' * 400000] * 10000)|join }}", "string of 4,000,000,000 characters"),
        (
            "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
            "string of 524,288 characters",
        ),
        (
            "{% set ns = namespace(s='xx') %}{% for i in range(64) %}"
            "{% set ns.s = ns.s|replace('x', 'xx') %}{% endfor %}",
            "replace would build",
        ),
        (
            "{% macro f(s) %}{{ f(s ~ s) }}{% endmacro %}{{ f('x') }}",
            "string of 524,288 characters",
        ),
        (
            "{% set x %}{% for i in range(100000) %}{{ 'y' * 400000 }}{% endfor %}{% endset %}",
            "50,000,000 characters and list items",
        ),
        ("{% for i in range(100000) %}{{ 'z' * 100 }}\n{% endfor %}", "rendered text is longer"),
        ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "recursion"),
    ],
)
def test_resource_bombs_hit_a_limit(template: str, needle: str) -> None:
    message = fails({"template": template, "title": "x"})
    assert needle in message, message
    assert message.startswith(("template exceeded a limit", "template recursion")), message


def test_render_time_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rg, "RENDER_SECONDS", 0.3)
    template = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    message = fails({"template": template, "title": "x"})
    assert message == "template exceeded a limit: rendering took longer than 0.3 s"


@pytest.mark.parametrize(
    ("template", "needle"),
    [
        ("fine\n{{ nope }}", "template error at line 2: 'nope' is undefined"),
        (
            "{{ data.missing }}",
            "template error at line 1: 'dict object' has no attribute 'missing'",
        ),
        ("a\nb\n{{ 1 / 0 }}", "template error at line 3: ZeroDivisionError: division by zero"),
        ("{{ lipsum() }}", "'lipsum' is undefined"),
        ("@chart 1", "'@chart 1' names no chart (data.charts has no charts"),
    ],
)
def test_runtime_errors_fail_permanently(template: str, needle: str) -> None:
    assert needle in fails({"template": template, "title": "x"})


def test_what_templates_may_do() -> None:
    template = (
        "{{ data.items|length }} {{ data['keys'] }} {{ 'a,b'.split(',')|join('+') }} "
        "{{ 3.14159|round(2) }} {{ '%5.1f'|format(2.25) }} {{ '%.2f' % 1.5 }} "
        "{{ 1234567|number }} {{ 1234.5|number(2, ' ') }} {{ data|items|list|length }} "
        "{{ ' t '.strip()|upper }} {% set ns = namespace(n=0) %}"
        "{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }} {{ [3, 1, 2]|sort|join }} {{ 'abc'|replace('b', 'B') }}"
    )
    _, pdf_bytes = run({"template": template, "title": "ok", "data": {"items": [1, 2], "keys": 7}})
    assert "2 7 a+b 3.14   2.2 1.50 1,234,567 1 234.50 2 T 3 123 aBc" in pdf_text(pdf_bytes)


EVERY_FILTER = {
    "abs": ("{{ -3|abs }}", "3"),
    "attr": ("{{ ('ab'|attr('upper'))() }}", "AB"),
    "batch": ("{{ [1, 2, 3]|batch(2, 0)|list }}", "[[1, 2], [3, 0]]"),
    "capitalize": ("{{ 'abc'|capitalize }}", "Abc"),
    "cell": ("{{ 'a|b'|cell }}", "a\\|b"),
    "center": ("[{{ 'ab'|center(6) }}]", "[  ab  ]"),
    "count": ("{{ [1, 2]|count }}", "2"),
    "d": ("{{ nope|d('dflt') }}", "dflt"),
    "default": ("{{ nope|default('dflt') }}", "dflt"),
    "dictsort": ("{{ {'b': 1, 'a': 2}|dictsort }}", "[('a', 2), ('b', 1)]"),
    "filesizeformat": ("{{ 2048|filesizeformat(true) }}", "2.0 KiB"),
    "first": ("{{ [4, 5]|first }}", "4"),
    "float": ("{{ '2.5'|float }}", "2.5"),
    "format": ("{{ '%03d-%s'|format(7, 'x') }}", "007-x"),
    "groupby": ("{{ data.rows|groupby('g')|map(attribute='grouper')|join(',') }}", "a,b"),
    "indent": ("{{ 'a\nb'|indent(2) }}", "a\n  b"),
    "int": ("{{ '42'|int + 1 }}", "43"),
    "items": ("{{ {'k': 1}|items|list }}", "[('k', 1)]"),
    "join": ("{{ [1, 2]|join('-') }}", "1-2"),
    "last": ("{{ [4, 5]|last }}", "5"),
    "length": ("{{ 'abc'|length }}", "3"),
    "list": ("{{ 'ab'|list }}", "['a', 'b']"),
    "lower": ("{{ 'AB'|lower }}", "ab"),
    "map": ("{{ data.rows|map(attribute='v')|list }}", "[1, 2, 3]"),
    "max": ("{{ [1, 5, 2]|max }}", "5"),
    "min": ("{{ [1, 5, 2]|min }}", "1"),
    "number": ("{{ 1234.5|number(1) }}", "1,234.5"),
    "oneline": ("{{ 'a\n b'|oneline }}", "a b"),
    "plain": ("{{ '# x'|plain }}", "\\# x"),
    "reject": ("{{ [1, 2, 3]|reject('odd')|list }}", "[2]"),
    "rejectattr": ("{{ data.rows|rejectattr('g', 'eq', 'a')|map(attribute='v')|list }}", "[3]"),
    "replace": ("{{ 'aXa'|replace('a', 'b') }}", "bXb"),
    "reverse": ("{{ 'abc'|reverse }}", "cba"),
    "round": ("{{ 2.567|round(1) }}", "2.6"),
    "select": ("{{ [1, 2, 3]|select('odd')|list }}", "[1, 3]"),
    "selectattr": ("{{ data.rows|selectattr('g', 'eq', 'a')|map(attribute='v')|list }}", "[1, 2]"),
    "slice": ("{{ [1, 2, 3]|slice(2)|list }}", "[[1, 2], [3]]"),
    "sort": ("{{ [3, 1, 2]|sort(reverse=true)|list }}", "[3, 2, 1]"),
    "string": ("{{ 5|string ~ '!' }}", "5!"),
    "sum": ("{{ data.rows|sum(attribute='v') }}", "6"),
    "title": ("{{ 'ab cd'|title }}", "Ab Cd"),
    "trim": ("[{{ '  x '|trim }}]", "[x]"),
    "truncate": ("{{ 'hello world'|truncate(8, true, '..', 0) }}", "hello .."),
    "unique": ("{{ [1, 1, 2]|unique|list }}", "[1, 2]"),
    "upper": ("{{ 'ab'|upper }}", "AB"),
    "wordcount": ("{{ 'a b c'|wordcount }}", "3"),
    "wordwrap": ("{{ 'aaa bbb'|wordwrap(3) }}", "aaa\nbbb"),
}


def test_every_allowed_filter_works() -> None:
    from innosystem_report_generation import sandbox

    assert set(EVERY_FILTER) == set(sandbox.ALLOWED_FILTERS)
    data = {"n": 7, "rows": [{"g": "a", "v": 1}, {"g": "a", "v": 2}, {"g": "b", "v": 3}]}
    for name, (source, expected) in EVERY_FILTER.items():
        template = sandbox.compile_template(source)
        out = sandbox.render(template, {"data": data, "title": "t"}, max_chars=1000, seconds=5)
        assert out == expected, (name, out)


# --- validation at submit ------------------------------------------------------------------------
def test_syntax_error_is_refused_at_submit() -> None:
    exc = refused({"template": "ok\n{% for x in %}", "title": "x"})
    assert exc.details[0]["field"] == "input_data.template"
    assert "syntax error at line 2" in exc.details[0]["message"]
    exc = refused({"template": "{{ 1 + }}", "title": "x"})
    assert exc.details[0]["field"] == "input_data.template"
    exc = refused({"template": "{% include 'other' %}", "title": "x"})
    assert "'include' is not supported" in exc.details[0]["message"]
    exc = refused({"template": "{{ 'x'|urlize }}", "title": "x"})  # not an allowed filter
    assert "No filter named 'urlize'" in exc.details[0]["message"]


def test_exactly_one_of_template_and_template_name() -> None:
    for data in (
        {"template": "x", "template_name": "summary", "title": "x"},
        {"title": "x"},
    ):
        exc = refused(data)
        assert exc.details[0]["field"] == "input_data"
        assert "exactly one of 'template'" in exc.details[0]["message"]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"template": "x" * (rg.MAX_TEMPLATE_CHARS + 1), "title": "x"}, "input_data.template"),
        ({"template": "x", "title": "t" * 201}, "input_data.title"),
        ({"template": "x", "title": "   "}, "input_data.title"),
        ({"template": "x", "title": "x", "filename": "../etc/passwd"}, "input_data.filename"),
        ({"template": "x", "title": "x", "filename": "report.exe"}, "input_data.filename"),
        ({"template": "x", "title": "x", "filename": ".pdf"}, "input_data.filename"),
        ({"template_name": "invoice", "title": "x"}, "input_data.template_name"),
        ({"template": "x", "title": "x", "colour": "red"}, "input_data.colour"),
        ({"template": "x", "title": "x", "data": [1, 2]}, "input_data.data"),
        (
            {"template": "x", "title": "x", "data": {"big": "x" * rg.MAX_DATA_BYTES}},
            "input_data.data",
        ),
        (
            {"template": "x", "title": "x", "data": {"charts": [{"series": []}]}},
            "input_data.data",
        ),
        (
            {
                "template": "x",
                "title": "x",
                "data": {"charts": [{"series": [{"name": "s", "points": [[1, "high"]]}]}]},
            },
            "input_data.data",
        ),
        (
            {
                "template_name": "table-report",
                "title": "x",
                "data": {"tables": [{"columns": ["a", "b"], "rows": [[1]]}]},
            },
            "input_data.data",
        ),
        ({"template_name": "summary", "title": "x", "data": {"typo": 1}}, "input_data.data"),
    ],
)
def test_bad_input_is_refused_at_submit(data: dict[str, Any], field: str) -> None:
    exc = refused(data)
    assert exc.details[0]["field"] == field, exc.details


def test_chart_data_errors_name_the_place() -> None:
    data = {"charts": [{"series": [{"name": "s", "points": [[1, 2], [3, "high"]]}]}]}
    exc = refused({"template": "x", "title": "x", "data": data})
    assert "data.charts.0.series.0.points.1.1" in exc.details[0]["message"]
    bar = {"type": "bar", "series": [{"name": "s", "points": [[f"c{i}", i] for i in range(101)]}]}
    exc = refused({"template": "x", "title": "x", "data": {"charts": [bar]}})
    assert "at most 100 distinct x values" in exc.details[0]["message"]


def test_valid_input_round_trips() -> None:
    data = {"template": "# {{ title }}", "title": " Report ", "data": {"a": 1}}
    assert PROC.validate_input(data) == {
        "template": "# {{ title }}",
        "template_name": None,
        "title": "Report",
        "data": {"a": 1},
        "filename": "report.pdf",
    }
    schema = PROC.describe()["input_schema"]
    json.dumps(schema)
    assert set(schema["properties"]) == {"template", "template_name", "title", "data", "filename"}


# --- limits and failures in the worker ----------------------------------------------------------
def test_too_many_table_rows_fail_the_job() -> None:
    template = "{% for i in range(5001) %}| {{ i }} |\n{% endfor %}"
    message = fails({"template": template, "title": "x"})
    assert "more than 5000 table rows" in message


def test_too_many_pages_fail_the_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rg, "MAX_PAGES", 2)
    template = "{% for i in range(3) %}{{ i }}\n@pagebreak\n{% endfor %}"
    message = fails({"template": template, "title": "x"})
    assert message == "the report would have more than 2 pages"


def test_no_artifact_storage_is_a_clear_permanent_error() -> None:
    ctx = make_ctx()
    ctx.artifacts = None
    with pytest.raises(PermanentError, match="no artifact storage"):
        PROC.process(ctx, PROC.validate_input({"template": "x", "title": "x"}))


def test_a_refused_artifact_is_a_permanent_error() -> None:
    class TinyStore(FakeArtifacts):
        def put(self, name: str, data: bytes, content_type: str) -> dict[str, Any]:
            raise ValueError(f"artifact {name!r} is {len(data)} bytes; limit 100")

    ctx = make_ctx()
    ctx.artifacts = TinyStore()
    with pytest.raises(PermanentError, match=r"PDF could not be stored: artifact 'report\.pdf' is"):
        PROC.process(ctx, PROC.validate_input({"template": "x", "title": "x"}))


def test_invalid_input_in_the_worker_is_permanent() -> None:
    with pytest.raises(PermanentError, match=r"input_data is invalid: input_data\.template"):
        PROC.process(make_ctx(), {"template": "{% if %}", "title": "x"})


# --- how the platform runs it --------------------------------------------------------------------
@pytest.mark.skipif(
    not hasattr(JobContext, "artifacts"), reason="the core has no artifact support yet"
)
def test_run_in_child_like_the_process_pool(tmp_path: Path) -> None:
    from innosystem.artifacts import JobArtifacts, LocalArtifactStore
    from innosystem.services.jobs import run_in_child

    job_id, customer_id = uuid4(), uuid4()
    artifacts = JobArtifacts(
        store=LocalArtifactStore(tmp_path),
        job_id=job_id,
        attempt=1,
        customer_id=customer_id,
        max_bytes=10 * 1024 * 1024,
    )
    data = PROC.validate_input(
        {"template": SALES_TEMPLATE, "title": "From the pool", "data": SALES_DATA}
    )
    ids = (str(job_id), 1, str(uuid4()), str(customer_id), "t")
    result = run_in_child("report-gen-v1", data, ids, artifacts)
    assert (result["pages"], result["tables"], result["charts"]) == (1, 1, 0)
    stored = tmp_path / "jobs" / str(job_id) / "1" / "report.pdf"
    pdf_bytes = stored.read_bytes()
    assert result["artifact"]["sha256"] == hashlib.sha256(pdf_bytes).hexdigest()
    assert "From the pool" in pdf_text(pdf_bytes)


def test_importing_the_plugin_imports_neither_jinja2_nor_fpdf() -> None:
    code = (
        "import sys, innosystem_report_generation as m; m.innosystem_processors(); "
        "print(sorted(n for n in ('jinja2', 'fpdf') if n in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
