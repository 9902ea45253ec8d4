"""InnoSystem processor plugin: ``image-recog-v2`` (image recognition).

Format, dimensions, EXIF summary, dominant colours, a perceptual hash and Haar-cascade object
detection for one PNG, JPEG or WebP image.

This module is imported by the platform at start, so it stays light: only pydantic (already a core
dependency) is imported here. Pillow, NumPy and OpenCV are imported inside functions, on first
submit (Pillow, for the cheap format check) or inside the CPU pool worker (everything else).
"""

from __future__ import annotations

import uuid
from typing import Any, ClassVar, Literal

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
from pydantic_core import PydanticCustomError

from innosystem import JobContext, PermanentError, Processor, RetryableError, hookimpl
from innosystem.errors import JobCancelled
from innosystem_image_recognition.limits import (
    ALLOWED_FORMATS,
    MAX_BASE64_CHARS,
    MAX_IMAGE_BYTES,
    MAX_PIXELS,
)

__all__ = [
    "ALLOWED_FORMATS",
    "MAX_BASE64_CHARS",
    "MAX_IMAGE_BYTES",
    "MAX_PIXELS",
    "ImageRecognition",
    "ImageRecognitionInput",
    "innosystem_processors",
]

#: Pass ``context={SKIP_PIXEL_CHECK: True}`` to validate only the shape, base64 and byte size.
SKIP_PIXEL_CHECK = "skip_pixel_check"


class ImageRecognitionInput(BaseModel):
    """Input of ``image-recog-v2``: exactly one image source.

    * ``image_base64``: the image inline, checked completely at submit time.
    * ``artifact_id``: the id of an upload (``POST /artifacts``) of the same customer. Only its
      form (a UUID) is checked at submit; the bytes are read and checked in the worker, where a
      missing, non-image, corrupt or oversized upload fails the job permanently.

    The bytes are resolved in one place (``source_bytes``); the rest of the pipeline does not
    know where they came from.
    """

    model_config = ConfigDict(
        extra="forbid",
        title="image-recog-v2 input",
        json_schema_extra={
            "oneOf": [{"required": ["image_base64"]}, {"required": ["artifact_id"]}]
        },
    )

    image_base64: str | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_BASE64_CHARS,
        description=(
            "The image file (PNG, JPEG or WebP), base64-encoded (standard or URL-safe alphabet, "
            "padding optional, whitespace ignored, an optional 'data:image/...;base64,' prefix "
            f"is accepted). At most {MAX_IMAGE_BYTES} bytes once decoded and at most "
            f"{MAX_PIXELS} pixels (width x height). Give this or artifact_id, not both."
        ),
    )
    artifact_id: str | None = Field(
        default=None,
        description=(
            "The id (a UUID) of an upload of the same customer (POST /artifacts) holding the "
            "PNG, JPEG or WebP file; the same limits apply, checked when the job runs. Give this "
            "or image_base64, not both."
        ),
        json_schema_extra={"format": "uuid"},
    )

    @field_validator("image_base64")
    @classmethod
    def _check_image(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        from innosystem_image_recognition import _image  # lazy: pulls in Pillow on use

        try:
            normalised, data = _image.decode_base64(value)
            if not (info.context or {}).get(SKIP_PIXEL_CHECK):
                _image.check_image_bytes(data)
        except _image.ImageRejected as exc:
            raise PydanticCustomError("invalid_image", "{reason}", {"reason": str(exc)}) from None
        return normalised

    @field_validator("artifact_id")
    @classmethod
    def _check_artifact_id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(uuid.UUID(value.strip()))
        except ValueError:
            raise PydanticCustomError(
                "invalid_artifact_id",
                "artifact_id must be the UUID of an upload (POST /artifacts), "
                "e.g. '0b5e6a36-8d3c-4c4e-9a55-1f2f0c9d7e21'",
            ) from None

    @model_validator(mode="after")
    def _exactly_one_source(self) -> ImageRecognitionInput:
        given = [name for name in SOURCES if getattr(self, name) is not None]
        if len(given) != 1:
            which = "both were given" if given else "neither was given"
            raise PydanticCustomError(
                "image_source",
                "give exactly one of image_base64 and artifact_id ({which})",
                {"which": which},
            )
        return self

    @model_serializer(mode="wrap")
    def _drop_absent_source(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """The processor receives only the source that was given (no ``null`` for the other)."""
        return {key: value for key, value in handler(self).items() if value is not None}


#: The fields that name the image; exactly one is given.
SOURCES = ("image_base64", "artifact_id")


def source_bytes(input_data: Any, ctx: JobContext | None = None) -> bytes:
    """The image bytes of an input (the one place that knows where images come from).

    ``image_base64`` is decoded (it was checked at submit). ``artifact_id`` is read with
    ``ctx.artifacts.read`` (``UploadNotFound``, a PermanentError, for an id this customer has no
    upload for) and then gets the checks ``image_base64`` gets at submit: size, format, pixels,
    ``verify()``. Raises PermanentError for input that can never succeed.
    """
    from innosystem_image_recognition import _image

    try:
        model = ImageRecognitionInput.model_validate(input_data, context={SKIP_PIXEL_CHECK: True})
    except ValidationError as exc:
        problems = "; ".join(
            "input_data" + "".join(f".{p}" for p in err["loc"]) + f": {err['msg']}"
            for err in exc.errors()
        )
        raise PermanentError(f"input_data is invalid: {problems}") from None
    if model.image_base64 is not None:
        try:
            return _image.decode_base64(model.image_base64)[1]
        except _image.ImageRejected as exc:  # pragma: no cover - the model already checked it
            raise PermanentError(f"input_data.image_base64: {exc}") from None

    artifact_id = model.artifact_id
    if ctx is None or getattr(ctx, "artifacts", None) is None:
        raise PermanentError(
            "input_data.artifact_id: this job context has no artifact access (ctx.artifacts), "
            "so uploads cannot be read"
        )
    data = ctx.artifacts.read(artifact_id)  # UploadNotFound (PermanentError) propagates
    where = f"upload {artifact_id} (input_data.artifact_id)"
    if len(data) > MAX_IMAGE_BYTES:
        raise PermanentError(
            f"{where}: the image is {len(data)} bytes, larger than the limit of "
            f"{MAX_IMAGE_BYTES} bytes ({MAX_IMAGE_BYTES // (1024 * 1024)} MiB)"
        )
    try:
        _image.check_image_bytes(data)
    except _image.ImageRejected as exc:
        raise PermanentError(f"{where}: {exc}") from None
    return data


class ImageRecognition(Processor):
    logic_id = "image-recog-v2"
    name = "Image Recognition"
    version = "1.0.0"
    processor_type: ClassVar[Literal["sync", "async", "batch"]] = "async"
    kind: ClassVar[Literal["io", "cpu"]] = "cpu"
    description = (
        "Format, dimensions, EXIF summary (no GPS coordinates), dominant colours, perceptual hash "
        "(pHash) and objects (faces, eyes, full bodies, cat faces) found with OpenCV Haar "
        "cascades, for a PNG, JPEG or WebP image."
    )
    input_model = ImageRecognitionInput

    def process(self, ctx: JobContext, input_data: Any) -> dict[str, Any]:
        """Runs in the platform's CPU process pool (kind = "cpu"): plain, blocking ``def``."""
        data = source_bytes(input_data, ctx)
        from innosystem_image_recognition import _image

        try:
            result = _image.analyse(data, ctx)
        except _image.ImageRejected as exc:
            raise PermanentError(str(exc)) from None
        except (PermanentError, RetryableError, JobCancelled):
            raise
        except MemoryError:
            raise RetryableError("ran out of memory while analysing the image") from None
        except Exception as exc:  # the same bytes would fail the same way: do not retry
            ctx.logger.exception("image analysis failed")
            raise PermanentError(f"image analysis failed: {type(exc).__name__}: {exc}") from None
        ctx.logger.info(
            "analysed {} {}x{} image: {} object(s)",
            result["format"],
            result["width"],
            result["height"],
            len(result["objects"]),
        )
        return result


@hookimpl
def innosystem_processors() -> list[Processor]:
    return [ImageRecognition()]
