"""InnoSystem processor plugin ``data-proc-v1``: schema, statistics and sandboxed read-only SQL
over CSV, JSON and Parquet datasets.

This module stays light on purpose: the API process imports it to validate ``input_data`` at
submit time. DuckDB is imported only inside the worker, by :mod:`innosystem_data_processing.engine`.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Literal
from uuid import UUID

from innosystem import JobContext, PermanentError, Processor, hookimpl
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

__all__ = [
    "MAX_DATASETS",
    "MAX_DATASET_BYTES",
    "MAX_QUERY_CHARS",
    "MAX_TOTAL_BYTES",
    "DataProcInput",
    "DataProcessing",
    "Dataset",
    "DatasetUnreadable",
    "dataset_bytes",
]

#: Largest dataset after decoding: UTF-8 bytes of csv/json text, bytes of the Parquet file.
MAX_DATASET_BYTES = 5 * 1024 * 1024
#: Largest sum over all datasets of one job, counted the same way.
MAX_TOTAL_BYTES = 20 * 1024 * 1024
MAX_DATASETS = 20
MAX_QUERY_CHARS = 20_000

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_PARQUET_MAGIC = b"PAR1"


def _b64_payload(content: str) -> str:
    """The base64 text without the whitespace (line breaks) that encoders like to insert."""
    return "".join(content.split())


def _decoded_size(fmt: str, content: str) -> int:
    if fmt == "parquet":
        payload = _b64_payload(content)
        return len(payload) * 3 // 4 - payload[-2:].count("=")
    return len(content.encode("utf-8", "surrogatepass"))


class Dataset(BaseModel):
    """One dataset: its bytes come inline in ``content`` or from an upload (``artifact_id``);
    exactly one of the two. The worker reads every dataset's bytes through
    :func:`dataset_bytes`, the one place that knows where data comes from.
    """

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        description="Table name in the SQL query: letters, digits and _, not starting with a "
        "digit, at most 63 characters; unique (case-insensitively) within the job.",
        examples=["sales"],
    )
    format: Literal["csv", "json", "parquet"] = Field(
        description="csv: comma-separated text with a header line; json: a JSON array of "
        "objects; parquet: a Parquet file, base64-encoded."
    )
    content: str | None = Field(
        default=None,
        min_length=1,
        description="The data: inline text for csv and json, base64 for parquet. At most "
        f"{MAX_DATASET_BYTES // (1024 * 1024)} MiB after decoding. Exclusive with "
        "`artifact_id`.",
    )
    artifact_id: UUID | None = Field(
        default=None,
        description="Id of one of the customer's uploads (POST /artifacts) holding the data: "
        "the raw file (csv/json as UTF-8 text, parquet as the Parquet file itself, not base64). "
        f"At most {MAX_DATASET_BYTES // (1024 * 1024)} MiB. Exclusive with `content`.",
    )

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _NAME.fullmatch(value):
            raise ValueError(
                "must be an identifier: letters, digits and _, not starting with a digit, "
                "at most 63 characters"
            )
        return value

    @field_validator("content")
    @classmethod
    def _content_fits(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        fmt = info.data.get("format")  # absent when the format itself was invalid
        if fmt == "parquet":
            payload = _b64_payload(value)
            if _decoded_size("parquet", value) > MAX_DATASET_BYTES:
                raise ValueError(f"is larger than {MAX_DATASET_BYTES} bytes after decoding")
            try:
                raw = base64.b64decode(payload, validate=True)
            except (binascii.Error, ValueError):
                raise ValueError("is not valid base64") from None
            if len(raw) < 12 or raw[:4] != _PARQUET_MAGIC or raw[-4:] != _PARQUET_MAGIC:
                raise ValueError("is not a Parquet file (no PAR1 magic bytes)")
            return value
        try:
            size = len(value.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError("is not valid Unicode") from None
        if size > MAX_DATASET_BYTES:
            raise ValueError(f"is larger than {MAX_DATASET_BYTES} bytes ({size} bytes of UTF-8)")
        if "\x00" in value:
            raise ValueError("must not contain U+0000 (NUL)")
        return value

    @model_validator(mode="after")
    def _one_source(self) -> Dataset:
        if (self.content is None) == (self.artifact_id is None):
            raise ValueError("give exactly one of content and artifact_id")
        return self

    @model_serializer(mode="wrap")
    def _without_absent_source(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # the stored input keeps the shape it was given: no "content": null or "artifact_id": null
        data = handler(self)
        for key in ("content", "artifact_id"):
            if data.get(key) is None:
                data.pop(key, None)
        return data


class DataProcInput(BaseModel):
    """``input_data`` of ``data-proc-v1``."""

    model_config = ConfigDict(extra="forbid")

    items: list[Dataset] = Field(min_length=1, max_length=MAX_DATASETS)
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="Optional read-only SQL: one SELECT (or WITH ... SELECT) statement over the "
        "datasets, each available as a table named by its `name`.",
    )

    @field_validator("items")
    @classmethod
    def _unique_and_bounded(cls, items: list[Dataset]) -> list[Dataset]:
        seen: set[str] = set()
        for item in items:
            key = item.name.lower()  # SQL identifiers are case-insensitive
            if key in seen:
                raise ValueError(f"dataset name {item.name!r} is used twice (names ignore case)")
            seen.add(key)
        # uploads are not read at submit: each is bounded by MAX_DATASET_BYTES when it is read
        total = sum(
            _decoded_size(item.format, item.content) for item in items if item.content is not None
        )
        if total > MAX_TOTAL_BYTES:
            raise ValueError(
                f"datasets add up to {total} bytes; the limit per job is {MAX_TOTAL_BYTES} bytes"
            )
        return items

    @field_validator("query")
    @classmethod
    def _query_text(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.strip():
            raise ValueError("must not be blank")
        if "\x00" in value:
            raise ValueError("must not contain U+0000 (NUL)")
        return value


class DatasetUnreadable(ValueError):
    """A dataset's bytes cannot be obtained or are unusable (missing upload, too large, not
    UTF-8, ...); the worker reports it in that dataset's entry."""


def dataset_bytes(dataset: Dataset, artifacts: Any = None) -> bytes:
    """The raw bytes of a dataset: the one place that knows where data comes from.

    Inline ``content`` was checked at submit. An upload (``artifact_id``) is read with
    ``artifacts.read`` (``ctx.artifacts``, the core's ``JobArtifacts``, which only reaches this
    customer's uploads) and checked here like inline content is at submit: the size limit,
    UTF-8 without NUL for csv/json, the PAR1 magic for parquet. Raises :class:`DatasetUnreadable`.
    """
    if dataset.artifact_id is None:
        assert dataset.content is not None  # the model guarantees one of the two
        if dataset.format == "parquet":
            return base64.b64decode(_b64_payload(dataset.content), validate=True)
        return dataset.content.encode("utf-8")
    if artifacts is None:
        raise DatasetUnreadable("uploads cannot be read here (the job has no artifact store)")
    try:
        raw = artifacts.read(dataset.artifact_id)
    except FileNotFoundError:  # UploadNotFound: missing, or another customer's
        raise DatasetUnreadable(
            f"upload {dataset.artifact_id} not found for this customer"
        ) from None
    except OSError as exc:
        raise DatasetUnreadable(
            f"upload {dataset.artifact_id} cannot be read ({type(exc).__name__})"
        ) from None
    raw = bytes(raw)
    if len(raw) > MAX_DATASET_BYTES:
        raise DatasetUnreadable(
            f"upload {dataset.artifact_id} is {len(raw)} bytes; the limit per dataset is "
            f"{MAX_DATASET_BYTES} bytes"
        )
    if dataset.format == "parquet":
        if len(raw) < 12 or raw[:4] != _PARQUET_MAGIC or raw[-4:] != _PARQUET_MAGIC:
            raise DatasetUnreadable(
                f"upload {dataset.artifact_id} is not a Parquet file (no PAR1 magic bytes)"
            )
        return raw
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetUnreadable(
            f"upload {dataset.artifact_id} is not UTF-8 text (bad byte at offset {exc.start})"
        ) from None
    if b"\x00" in raw:
        raise DatasetUnreadable(f"upload {dataset.artifact_id} contains NUL bytes")
    return raw


class DataProcessing(Processor):
    logic_id = "data-proc-v1"
    name = "Data Processing"
    version = "1.0"
    processor_type = "batch"
    kind = "cpu"
    description = (
        "Schema, row count and per-column statistics for CSV, JSON and Parquet datasets, and an "
        "optional read-only SQL query over them (DuckDB, sandboxed: no file or network access)."
    )
    input_model = DataProcInput

    def process(self, ctx: JobContext, input_data: Any) -> dict[str, Any]:
        try:
            spec = DataProcInput.model_validate(input_data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = "input_data" + "".join(f".{p}" for p in first["loc"])
            raise PermanentError(
                f"input_data is invalid ({exc.error_count()} error(s)); {where}: {first['msg']}"
            ) from None
        from innosystem_data_processing import engine  # DuckDB lives there; import it lazily

        return engine.run(ctx, spec)


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [DataProcessing()]
