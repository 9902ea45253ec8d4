"""InnoSystem processor plugin: ``email-proc-v1``.

Parses a batch of RFC 5322 messages: headers, plain-text body, attachment list, thread key,
language and sentiment of the body, and a category decided by documented rules. One message that
cannot be parsed is recorded as an item error; the job fails only when every item failed.
The parsing and analysis modules (and BeautifulSoup, langdetect, VADER) load on first use.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from innosystem import JobContext, PermanentError, Processor, hookimpl
from innosystem.errors import ValidationFailed

__all__ = ["MAX_ITEMS", "MAX_RAW_BYTES", "EmailInput", "EmailProcessing", "innosystem_processors"]

#: Most messages in one job.
MAX_ITEMS = 100
#: Largest accepted message, in bytes of its UTF-8 encoding (1 MiB).
MAX_RAW_BYTES = 1024 * 1024
#: Must match ``rules.CATEGORIES`` (kept here so the summary needs no import of the rules).
CATEGORIES = (
    "newsletter",
    "notification",
    "invoice_receipt",
    "support_request",
    "personal",
    "likely_spam",
)


class EmailItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    raw: str = Field(
        min_length=1,
        description="One RFC 5322 message as text (headers, blank line, body), at most 1 MiB.",
    )

    @field_validator("raw")
    @classmethod
    def _raw_size(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        size = len(value.encode("utf-8", "surrogatepass"))
        if size > MAX_RAW_BYTES:
            raise ValueError(f"is {size:,} bytes; the limit is {MAX_RAW_BYTES:,} (1 MiB)")
        return value


class EmailInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[EmailItem] = Field(
        min_length=1, max_length=MAX_ITEMS, description=f"1 to {MAX_ITEMS} messages."
    )


class EmailProcessing(Processor):
    logic_id = "email-proc-v1"
    name = "Email Processing"
    version = "1.0.0"
    processor_type = "batch"
    # A plain `def` with kind "io" runs in a worker thread, off the event loop, and keeps
    # ctx.report_progress and cancellation (a "cpu" child process has neither).
    kind = "io"
    description = (
        "Parse, thread, classify and analyse 1 to 100 RFC 5322 messages: headers, plain-text "
        "body, attachments, thread key, language, sentiment and a rule-based category."
    )
    input_model = EmailInput

    def process(self, ctx: JobContext, input_data: Any) -> dict[str, Any]:
        try:
            data = self.validate_input(input_data)
        except ValidationFailed as exc:  # stored input from before a schema change: no retry
            raise PermanentError(f"{exc.message}: {exc.details}") from None

        from innosystem_email_processing.pipeline import process_message

        items = data["items"]
        total = len(items)
        results: list[dict[str, Any]] = []
        succeeded = failed = 0
        by_category = dict.fromkeys(CATEGORIES, 0)
        first_error: str | None = None
        ctx.report_progress(total=total, succeeded=0, failed=0)
        for index, item in enumerate(items):
            ctx.raise_if_cancelled()
            try:
                result = process_message(item["raw"])
            except Exception as exc:  # one bad message must not fail the batch
                message = str(exc) or type(exc).__name__
                if not isinstance(exc, ValueError):
                    message = f"{type(exc).__name__}: {message}"
                message = message[:500]
                failed += 1
                first_error = first_error or f"item {index}: {message}"
                results.append({"index": index, "error": message})
                ctx.logger.warning("item {} failed: {}", index, message)
            else:
                succeeded += 1
                category = result["classification"]["category"]
                by_category[category] = by_category.get(category, 0) + 1
                results.append({"index": index, **result})
            ctx.report_progress(total=total, succeeded=succeeded, failed=failed)
        if succeeded == 0:
            raise PermanentError(
                f"all {total} item(s) failed, none could be processed; first error: {first_error}"
            )
        ctx.logger.info("processed {} message(s), {} failed", total, failed)
        return {
            "items": results,
            "summary": {
                "total": total,
                "succeeded": succeeded,
                "failed": failed,
                "by_category": by_category,
            },
        }


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [EmailProcessing()]
