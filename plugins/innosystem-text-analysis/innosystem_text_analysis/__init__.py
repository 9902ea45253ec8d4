"""InnoSystem processor plugin: ``text-analysis-v1``.

Sentiment (VADER), key phrases (YAKE), language (langdetect, seed 0), word and sentence counts and
reading time for one text or a list of texts. The analysis libraries are imported on first use in
``innosystem_text_analysis.analysis``, never when the platform loads this plugin.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_serializer,
    model_validator,
)

from innosystem import JobContext, PermanentError, Processor, hookimpl
from innosystem.errors import ValidationFailed

__all__ = [
    "MAX_TEXTS",
    "MAX_TEXT_CHARS",
    "MAX_TOTAL_CHARS",
    "TextAnalysis",
    "TextAnalysisInput",
    "innosystem_processors",
]

#: Longest accepted text, in characters (Unicode code points).
MAX_TEXT_CHARS = 100_000
#: Most texts in one job.
MAX_TEXTS = 100
#: Most characters in one job, all texts together.
MAX_TOTAL_CHARS = 1_000_000


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must contain non-whitespace text")
    return value


Text = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_TEXT_CHARS),
    AfterValidator(_not_blank),
]


class TextAnalysisInput(BaseModel):
    """Exactly one of ``text`` or ``texts``."""

    model_config = ConfigDict(extra="forbid")

    text: Text | None = Field(
        default=None, description=f"One text, 1 to {MAX_TEXT_CHARS:,} characters, not blank."
    )
    texts: list[Text] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_TEXTS,
        description=(
            f"1 to {MAX_TEXTS} texts, each 1 to {MAX_TEXT_CHARS:,} characters and not blank; "
            f"at most {MAX_TOTAL_CHARS:,} characters in all."
        ),
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> TextAnalysisInput:
        if (self.text is None) == (self.texts is None):
            raise ValueError('give exactly one of "text" or "texts"')
        total = sum(len(t) for t in self.texts) if self.texts is not None else 0
        if total > MAX_TOTAL_CHARS:
            raise ValueError(
                f"texts hold {total:,} characters in all; the limit is {MAX_TOTAL_CHARS:,}"
            )
        return self

    @model_serializer(mode="wrap")
    def _without_the_absent_field(self, handler: Any) -> dict[str, Any]:
        """The validated input keeps only the field that was given (no ``"texts": null``)."""
        return {k: v for k, v in handler(self).items() if v is not None}


class TextAnalysis(Processor):
    logic_id = "text-analysis-v1"
    name = "Text Analysis"
    version = "1.0.0"
    processor_type = "async"
    kind = "cpu"  # YAKE on 100,000 characters takes about a second: keep it off the API loop
    description = (
        "Sentiment (VADER, English lexicon), key phrases (YAKE), language (langdetect), "
        "word and sentence counts and reading time for one text or up to 100 texts."
    )
    input_model = TextAnalysisInput

    def process(self, ctx: JobContext, input_data: Any) -> dict[str, Any]:
        try:
            data = self.validate_input(input_data)
        except ValidationFailed as exc:  # stored input from before a schema change: no retry
            raise PermanentError(f"{exc.message}: {exc.details}") from None
        texts: list[str] = [data["text"]] if data.get("text") is not None else data["texts"]

        from innosystem_text_analysis.analysis import analyze_text

        results = []
        for index, text in enumerate(texts):
            ctx.raise_if_cancelled()
            results.append({"index": index, **analyze_text(text)})
        ctx.logger.info("analysed {} text(s)", len(results))
        return {"results": results, "count": len(results)}


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [TextAnalysis()]
