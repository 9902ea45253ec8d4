"""InnoSystem processor plugin ``report-gen-v1``: a Jinja2 template (inline or built-in) plus
JSON data, rendered in a sandbox to a PDF report with headings, text, tables and charts, stored
as an artifact of the job.

This module stays light on purpose: the API process imports it to validate ``input_data`` at
submit time. Jinja2 is imported only when a template is compiled (:mod:`.sandbox`), fpdf2 only
in the worker (:mod:`.pdf`).
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any, Literal

from innosystem import JobContext, PermanentError, Processor, hookimpl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from innosystem_report_generation.templates import (
    BUILTIN_DATA_MODELS,
    BUILTIN_TEMPLATES,
    MAX_CHART_POINTS,
    MAX_CHARTS,
    MAX_TABLE_COLUMNS,
    MAX_TABLE_ROWS,
    Chart,
)

__all__ = [
    "BUILD_SECONDS",
    "MAX_CELL_CHARS",
    "MAX_DATA_BYTES",
    "MAX_PAGES",
    "MAX_RENDERED_CHARS",
    "MAX_TABLE_COLUMNS",
    "MAX_TABLE_ROWS",
    "MAX_TEMPLATE_CHARS",
    "MAX_TITLE_CHARS",
    "RENDER_SECONDS",
    "ReportGeneration",
    "ReportInput",
]

MAX_TEMPLATE_CHARS = 100_000
MAX_TITLE_CHARS = 200
#: ``data`` as compact JSON (the server's request body limit, 1 MiB by default, applies first).
MAX_DATA_BYTES = 5 * 1024 * 1024
#: Characters of rendered template text (the markup the PDF is built from).
MAX_RENDERED_CHARS = 2_000_000
#: Time budget for rendering the template.
RENDER_SECONDS = 10.0
#: Time budget for laying out the PDF.
BUILD_SECONDS = 60.0
MAX_PAGES = 500
#: Longer table cells are cut (with "…").
MAX_CELL_CHARS = 1_000

_FILENAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,250}\.[pP][dD][fF]")
_TEMPLATE_NAMES = tuple(sorted(BUILTIN_TEMPLATES))


@functools.cache
def _charts_adapter() -> TypeAdapter[list[Chart]]:
    return TypeAdapter(list[Chart])


def _first_error(exc: ValidationError, prefix: str) -> str:
    err = exc.errors()[0]
    where = ".".join([prefix, *(str(p) for p in err["loc"])])
    more = f" (and {exc.error_count() - 1} more error(s))" if exc.error_count() > 1 else ""
    return f"{where}: {err['msg']}{more}"


class ReportInput(BaseModel):
    """``input_data`` of ``report-gen-v1``."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEMPLATE_CHARS,
        description="An inline Jinja2 template (sandboxed) that renders the report markup. "
        "Give this or template_name.",
    )
    template_name: Literal["summary", "table-report"] | None = Field(
        default=None, description="A built-in template. Give this or template."
    )
    title: str = Field(
        min_length=1, max_length=MAX_TITLE_CHARS, description="Shown on top of the first page."
    )
    data: dict[str, Any] = Field(
        default_factory=dict,
        description="Any JSON object; the template sees it as `data`. `data.charts` is "
        "reserved: a list of charts to draw.",
    )
    filename: str = Field(
        default="report.pdf",
        description="Name of the PDF artifact: letters, digits, '.', '_', '-', ending in .pdf.",
    )

    @field_validator("template")
    @classmethod
    def _compiles(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if "\x00" in value:
            raise ValueError("must not contain U+0000 (NUL)")
        from innosystem_report_generation import sandbox  # imports Jinja2

        try:
            compiled = sandbox.compile_template(value)
        except sandbox.TemplateCompileError as exc:
            raise ValueError(f"template {exc}") from None
        if isinstance(info.context, dict):
            info.context["compiled"] = compiled  # spares the worker a second compilation
        return value

    @field_validator("title")
    @classmethod
    def _title(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain U+0000 (NUL)")
        return value

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str) -> str:
        if not _FILENAME.fullmatch(value):
            raise ValueError(
                "must be 5 to 255 characters of A-Z a-z 0-9 . _ -, not start with '.', "
                "and end in .pdf"
            )
        return value

    @field_validator("data")
    @classmethod
    def _data(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False))
        if size > MAX_DATA_BYTES:
            raise ValueError(f"is {size} characters of JSON; the limit is {MAX_DATA_BYTES}")
        name = info.data.get("template_name")
        if name is not None:
            try:
                BUILTIN_DATA_MODELS[name].model_validate(value)
            except ValidationError as exc:
                raise ValueError(
                    f"does not fit template {name!r}: {_first_error(exc, 'data')}"
                ) from None
        charts = value.get("charts")
        if charts is not None:
            try:
                parsed = _charts_adapter().validate_python(charts)
            except ValidationError as exc:
                raise ValueError(_first_error(exc, "data.charts")) from None
            if len(parsed) > MAX_CHARTS:
                raise ValueError(f"data.charts has {len(parsed)} charts; the limit is {MAX_CHARTS}")
            points = sum(len(s.points) for c in parsed for s in c.series)
            if points > MAX_CHART_POINTS:
                raise ValueError(
                    f"data.charts has {points} points in all; the limit is {MAX_CHART_POINTS}"
                )
        return value

    @model_validator(mode="after")
    def _one_template(self) -> ReportInput:
        if (self.template is None) == (self.template_name is None):
            raise ValueError(
                "give exactly one of 'template' (inline template text) and 'template_name' "
                f"(one of {', '.join(_TEMPLATE_NAMES)})"
            )
        return self


@functools.cache
def _builtin(name: str) -> Any:
    from innosystem_report_generation import sandbox

    return sandbox.compile_template(BUILTIN_TEMPLATES[name])


class ReportGeneration(Processor):
    logic_id = "report-gen-v1"
    name = "Report Generation"
    version = "1.0"
    processor_type = "sync"
    kind = "cpu"
    description = (
        "Renders a Jinja2 template (inline, sandboxed, or built-in: summary, table-report) with "
        "JSON data into a PDF report with headings, text, tables and line/bar charts, stored "
        "as the job's artifact."
    )
    input_model = ReportInput

    def process(self, ctx: JobContext, input_data: Any) -> dict[str, Any]:
        store = getattr(ctx, "artifacts", None)
        if store is None:
            raise PermanentError(
                "this runner gives processors no artifact storage (ctx.artifacts); "
                "report-gen-v1 needs an InnoSystem core with artifact support"
            )
        holder: dict[str, Any] = {}
        try:
            spec = ReportInput.model_validate(input_data, context=holder)
        except ValidationError as exc:
            raise PermanentError(
                f"input_data is invalid: {_first_error(exc, 'input_data')}"
            ) from None
        from innosystem_report_generation import markup, pdf, sandbox  # Jinja2 and fpdf2

        template = holder.get("compiled")
        if template is None:
            template = _builtin(spec.template_name)
        charts = _charts_adapter().validate_python(spec.data.get("charts") or [])

        ctx.raise_if_cancelled()
        try:
            text = sandbox.render(
                template,
                {"data": spec.data, "title": spec.title},
                max_chars=MAX_RENDERED_CHARS,
                seconds=RENDER_SECONDS,
            )
        except sandbox.RenderError as exc:
            raise PermanentError(exc.message) from None
        try:
            blocks = markup.parse(
                text,
                charts=len(charts),
                max_table_rows=MAX_TABLE_ROWS,
                max_table_columns=MAX_TABLE_COLUMNS,
                max_cell_chars=MAX_CELL_CHARS,
            )
        except markup.MarkupError as exc:
            raise PermanentError(f"the rendered report breaks a limit: {exc}") from None

        ctx.raise_if_cancelled()
        try:
            built = pdf.build(
                spec.title, blocks, charts, max_pages=MAX_PAGES, seconds=BUILD_SECONDS
            )
        except pdf.BuildError as exc:
            raise PermanentError(str(exc)) from None
        ctx.logger.info(
            "report: {} characters rendered, {} pages, {} bytes",
            len(text),
            built.pages,
            len(built.pdf),
        )

        ctx.raise_if_cancelled()
        try:
            stored = store.put(spec.filename, built.pdf, "application/pdf")
        except ValueError as exc:  # the store refuses it (e.g. larger than artifacts.max_bytes)
            raise PermanentError(f"the PDF could not be stored: {exc}") from None
        return {
            "artifact": {
                key: stored[key] for key in ("name", "content_type", "size_bytes", "sha256")
            },
            "pages": built.pages,
            "title": spec.title,
            "tables": built.tables,
            "charts": built.charts,
            "replaced_characters": built.replaced_characters,
        }


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [ReportGeneration()]
