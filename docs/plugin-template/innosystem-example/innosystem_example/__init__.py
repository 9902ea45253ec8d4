"""InnoSystem processor plugin ``example-word-count-v1``: counts the words of a text.

Copy this package to start a plugin of your own: rename the package (``innosystem-example``),
the module (``innosystem_example``) and the logic id, then replace ``WordCount``.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from typing import Any

from innosystem import JobContext, Processor, hookimpl
from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["WordCount", "WordCountInput"]

_WORD = re.compile(r"[^\W\d_]+(?:['\u2019-][^\W\d_]+)*")


class WordCountInput(BaseModel):
    """``input_data`` of ``example-word-count-v1``; a mismatch is refused at submit with 422."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=200_000, description="The text to count.")
    top: int = Field(default=10, ge=1, le=100, description="How many of the most common words.")
    case_sensitive: bool = Field(default=False, description="Count 'The' and 'the' apart.")
    write_csv: bool = Field(
        default=False, description="Also store every word's count as the artifact counts.csv."
    )

    @field_validator("text")
    @classmethod
    def _has_words(cls, value: str) -> str:
        if not _WORD.search(value):
            raise ValueError("contains no words")
        return value


class WordCount(Processor):
    logic_id = "example-word-count-v1"
    name = "Word count"
    version = "0.1.0"
    processor_type = "async"  # a job type for it must say the same
    kind = "io"  # quick pure-Python work; use "cpu" (and a plain def) for heavy computation
    description = "Counts the words of a text: total, distinct and the most common ones."
    input_model = WordCountInput

    async def process(self, ctx: JobContext, input_data: dict[str, Any]) -> dict[str, Any]:
        # input_data is the model's JSON dump: defaults filled in, already validated at submit.
        text = input_data["text"] if input_data["case_sensitive"] else input_data["text"].lower()
        counts = Counter(_WORD.findall(text))
        ctx.report_progress(words=sum(counts.values()))
        ctx.logger.info("attempt {}: {} distinct words", ctx.attempt, len(counts))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))  # ties: a-z
        result: dict[str, Any] = {
            "words": sum(counts.values()),
            "distinct": len(counts),
            "top": [{"word": word, "count": count} for word, count in ranked[: input_data["top"]]],
        }
        if input_data["write_csv"]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(["word", "count"])
            writer.writerows(ranked)
            # Same name on a retry replaces this attempt's file; a failed attempt's are dropped.
            result["csv"] = ctx.artifacts.put(
                "counts.csv", buffer.getvalue().encode("utf-8"), "text/csv; charset=utf-8"
            )
        return result


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [WordCount()]
