"""The built-in templates (``template_name``) and the ``data`` each one expects.

The sources are plain strings here, written in the same template language a job may send inline
(README.md, "Template language"), so they double as examples. Their ``data`` is checked at
submit time with the pydantic models below (422 on a mismatch).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AllowInfNan,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

__all__ = [
    "BUILTIN_DATA_MODELS",
    "BUILTIN_TEMPLATES",
    "MAX_BAR_CATEGORIES",
    "MAX_CHARTS",
    "MAX_CHART_POINTS",
    "MAX_POINTS_PER_SERIES",
    "MAX_SERIES_PER_CHART",
    "MAX_TABLE_COLUMNS",
    "MAX_TABLE_ROWS",
    "Chart",
    "Series",
]

#: Table rows in one report, header rows included (inline templates and built-ins alike).
MAX_TABLE_ROWS = 5_000
MAX_TABLE_COLUMNS = 20
MAX_CHARTS = 20
MAX_SERIES_PER_CHART = 10
MAX_POINTS_PER_SERIES = 2_000
#: Points over all charts of one report.
MAX_CHART_POINTS = 20_000
#: Distinct x values (categories) of one bar chart.
MAX_BAR_CATEGORIES = 100

Number = StrictInt | Annotated[StrictFloat, AllowInfNan(False)]
Scalar = StrictStr | StrictInt | Annotated[StrictFloat, AllowInfNan(False)] | StrictBool | None


class Series(BaseModel):
    """One data series: ``points`` are ``[x, y]`` pairs; x a number or a label, y a number."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    points: list[tuple[Annotated[StrictStr, Field(max_length=100)] | Number, Number]] = Field(
        min_length=1, max_length=MAX_POINTS_PER_SERIES
    )


class Chart(BaseModel):
    """One chart of ``data.charts``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["line", "bar"] = "line"
    title: str | None = Field(default=None, max_length=200)
    x_label: str | None = Field(default=None, max_length=100)
    y_label: str | None = Field(default=None, max_length=100)
    series: list[Series] = Field(min_length=1, max_length=MAX_SERIES_PER_CHART)

    @model_validator(mode="after")
    def _categories(self) -> Chart:
        if self.type == "bar":
            labels = {str(x) for s in self.series for x, _ in s.points}
            if len(labels) > MAX_BAR_CATEGORIES:
                raise ValueError(
                    f"a bar chart takes at most {MAX_BAR_CATEGORIES} distinct x values "
                    f"(categories); this one has {len(labels)}"
                )
        return self


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")

    heading: str = Field(min_length=1, max_length=200)
    text: str | None = Field(default=None, max_length=50_000)
    bullets: list[Annotated[str, Field(max_length=2_000)]] = Field(
        default_factory=list, max_length=200
    )


class SummaryData(BaseModel):
    """``data`` of the ``summary`` template."""

    model_config = ConfigDict(extra="forbid")

    intro: str | None = Field(default=None, max_length=50_000)
    metrics: dict[Annotated[str, Field(max_length=200)], Scalar] | None = Field(
        default=None, max_length=200
    )
    sections: list[_Section] = Field(default_factory=list, max_length=100)
    charts: Any = None  # checked for every template, see ReportInput


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, max_length=200)
    columns: list[Annotated[str, Field(max_length=200)]] = Field(
        min_length=1, max_length=MAX_TABLE_COLUMNS
    )
    rows: list[list[Scalar]] = Field(default_factory=list, max_length=MAX_TABLE_ROWS - 1)

    @model_validator(mode="after")
    def _row_lengths(self) -> _Table:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(
                    f"rows.{i} has {len(row)} values; the table has {len(self.columns)} columns"
                )
        return self


class TableReportData(BaseModel):
    """``data`` of the ``table-report`` template."""

    model_config = ConfigDict(extra="forbid")

    intro: str | None = Field(default=None, max_length=50_000)
    tables: list[_Table] = Field(min_length=1, max_length=50)
    notes: str | None = Field(default=None, max_length=50_000)
    charts: Any = None  # checked for every template, see ReportInput

    @model_validator(mode="after")
    def _total_rows(self) -> TableReportData:
        total = sum(len(t.rows) + 1 for t in self.tables)
        if total > MAX_TABLE_ROWS:
            raise ValueError(
                f"the tables have {total} rows (headers included); the limit is {MAX_TABLE_ROWS}"
            )
        return self


TABLE_REPORT = """\
{% if data.intro is defined and data.intro %}
{{ data.intro|plain }}

{% endif %}
{% for table in data.tables %}
{% if table.title is defined and table.title %}
## {{ table.title|oneline }}
{% endif %}
|{% for column in table.columns %} {{ column|cell }} |{% endfor +%}
{% for row in table.rows %}
|{% for value in row %} {{ value|cell }} |{% endfor +%}
{% endfor %}

{% endfor %}
{% if data.notes is defined and data.notes %}
## Notes
{{ data.notes|plain }}
{% endif %}
"""

SUMMARY = """\
{% if data.intro is defined and data.intro %}
{{ data.intro|plain }}

{% endif %}
{% if data.metrics is defined and data.metrics %}
## Key figures
| Metric | Value |
{% for name, value in data.metrics|items %}
| {{ name|cell }} | {{ value|number|cell }} |
{% endfor %}

{% endif %}
{% for section in data.sections|default([]) %}
## {{ section.heading|oneline }}
{% if section.text is defined and section.text %}
{{ section.text|plain }}
{% endif %}
{% for bullet in section.bullets|default([]) %}
- {{ bullet|oneline }}
{% endfor %}

{% endfor %}
"""

#: name -> template source
BUILTIN_TEMPLATES: dict[str, str] = {"summary": SUMMARY, "table-report": TABLE_REPORT}
#: name -> the model its ``data`` must match
BUILTIN_DATA_MODELS: dict[str, type[BaseModel]] = {
    "summary": SummaryData,
    "table-report": TableReportData,
}
