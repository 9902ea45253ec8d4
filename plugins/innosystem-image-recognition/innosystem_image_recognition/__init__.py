"""InnoSystem processor plugin: ``image-recog-v2`` (image recognition).

Format, dimensions, EXIF summary, dominant colours, a perceptual hash and Haar-cascade object
detection for one PNG, JPEG or WebP image.

This module is imported by the platform at start, so it stays light: only pydantic (already a core
dependency) is imported here. Pillow, NumPy and OpenCV are imported inside functions, on first
submit (Pillow, for the cheap format check) or inside the CPU pool worker (everything else).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
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
    """Input of ``image-recog-v2``.

    The image source is one field today (``image_base64``). An ``artifact_id`` alternative is
    planned: it will be added as a second optional field with a rule that exactly one of the two
    is given, and the processor resolves the bytes in one place (``source_bytes``), so the rest
    of the pipeline does not change.
    """

    model_config = ConfigDict(extra="forbid", title="image-recog-v2 input")

    image_base64: str = Field(
        min_length=1,
        max_length=MAX_BASE64_CHARS,
        description=(
            "The image file (PNG, JPEG or WebP), base64-encoded (standard or URL-safe alphabet, "
            "padding optional, whitespace ignored, an optional 'data:image/...;base64,' prefix "
            f"is accepted). At most {MAX_IMAGE_BYTES} bytes once decoded and at most "
            f"{MAX_PIXELS} pixels (width x height)."
        ),
    )

    @field_validator("image_base64")
    @classmethod
    def _check_image(cls, value: str, info: ValidationInfo) -> str:
        from innosystem_image_recognition import _image  # lazy: pulls in Pillow on use

        try:
            normalised, data = _image.decode_base64(value)
            if not (info.context or {}).get(SKIP_PIXEL_CHECK):
                _image.check_image_bytes(data)
        except _image.ImageRejected as exc:
            raise PydanticCustomError("invalid_image", "{reason}", {"reason": str(exc)}) from None
        return normalised


def source_bytes(input_data: Any) -> bytes:
    """The image bytes of an input (the one place that knows where images come from).

    Raises PermanentError for input that can never succeed.
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
    try:
        return _image.decode_base64(model.image_base64)[1]
    except _image.ImageRejected as exc:  # pragma: no cover - the model already checked it
        raise PermanentError(f"input_data.image_base64: {exc}") from None


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
        data = source_bytes(input_data)
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
