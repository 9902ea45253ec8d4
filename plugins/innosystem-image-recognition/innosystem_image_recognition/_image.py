"""The image work of ``image-recog-v2``.

Imported lazily: at submit time (Pillow only, for the cheap checks) and inside the CPU pool worker
(``analyse``, which also imports NumPy and OpenCV). Nothing here may be imported at plugin load.
"""

from __future__ import annotations

import base64
import binascii
import functools
import io
import warnings
from typing import TYPE_CHECKING, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from innosystem_image_recognition.limits import (
    ALLOWED_FORMATS,
    CASCADES,
    COLOR_COUNT,
    COLOR_KMEANS_MAX_ITER,
    COLOR_KMEANS_SEED,
    COLOR_SAMPLE_MAX_SIDE,
    DETECTION_MAX_SIDE,
    EYE_CASCADE,
    EYE_REGION_FRACTION,
    MAX_BASE64_CHARS,
    MAX_EYES_PER_FACE,
    MAX_IMAGE_BYTES,
    MAX_OBJECTS_PER_LABEL,
    MAX_PIXELS,
)

if TYPE_CHECKING:
    import numpy as np

    from innosystem import JobContext

_MAX_ENCODED = 4 * ((MAX_IMAGE_BYTES + 2) // 3)
#: Leading bytes of formats people often send by mistake, for a clearer message.
_OTHER_FORMATS: tuple[tuple[bytes, str], ...] = (
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"%PDF", "PDF"),
    (b"\x00\x00\x01\x00", "ICO"),
)


class ImageRejected(ValueError):
    """The input is not an image this processor accepts; the message says why."""


# --- decoding and checks (used at submit time and in the worker) ------------------------------
def decode_base64(value: str) -> tuple[str, bytes]:
    """(normalised base64, decoded bytes); raises ImageRejected with a clear reason."""
    if len(value) > MAX_BASE64_CHARS:
        raise ImageRejected(f"image_base64 is longer than {MAX_BASE64_CHARS} characters")
    text = value.strip()
    if text[:5].lower() == "data:":
        header, sep, text = text.partition(",")
        if not sep or not header.lower().endswith(";base64"):
            raise ImageRejected("a data: URL must have the form 'data:<mime type>;base64,<data>'")
    text = "".join(text.split())  # MIME line breaks and other whitespace
    if not text:
        raise ImageRejected("image_base64 holds no data")
    if len(text) > _MAX_ENCODED:
        raise ImageRejected(
            f"the image is larger than the limit of {MAX_IMAGE_BYTES} bytes "
            f"({MAX_IMAGE_BYTES // (1024 * 1024)} MiB)"
        )
    text = text.rstrip("=")
    if len(text) % 4 == 1:
        raise ImageRejected("image_base64 is not valid base64 (its length is impossible)")
    padded = text + "=" * (-len(text) % 4)
    urlsafe = "-" in padded or "_" in padded
    try:
        data = base64.b64decode(padded, altchars=b"-_" if urlsafe else None, validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected(
            "image_base64 is not valid base64 (only A-Z a-z 0-9 + / or - _ and = padding)"
        ) from None
    if len(data) > MAX_IMAGE_BYTES:  # pragma: no cover - the length check above is exact
        raise ImageRejected(f"the image is larger than the limit of {MAX_IMAGE_BYTES} bytes")
    if urlsafe:
        padded = base64.b64encode(data).decode("ascii")
    return padded, data


def open_image(data: bytes) -> Image.Image:
    """Open (lazily: header only) and check format and pixel count; raises ImageRejected."""
    if not data:
        raise ImageRejected("the image is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(ALLOWED_FORMATS))
    except Image.DecompressionBombError:
        raise ImageRejected(f"the image has more than {MAX_PIXELS} pixels") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        other = next((name for magic, name in _OTHER_FORMATS if data.startswith(magic)), None)
        if other is not None:
            raise ImageRejected(
                f"{other} images are not supported; send PNG, JPEG or WebP"
            ) from None
        detail = "" if isinstance(exc, UnidentifiedImageError) else f" ({exc})"
        raise ImageRejected(f"the data is not a readable PNG, JPEG or WebP image{detail}") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(f"the image has an invalid size {width}x{height}")
    if width * height > MAX_PIXELS:
        raise ImageRejected(
            f"the image has {width}x{height} = {width * height} pixels; "
            f"the limit is {MAX_PIXELS} ({MAX_PIXELS / 1_000_000:g} megapixels)"
        )
    return image


def check_image_bytes(data: bytes) -> None:
    """The submit-time check: format, pixel count and Pillow's ``verify()`` (no full decode).

    ``verify`` checks a PNG's chunk CRCs; it does not decode JPEG or WebP pixel data, so a JPEG
    or WebP whose pixel data is damaged is only found when the job runs (a permanent failure).
    """
    image = open_image(data)
    try:
        image.verify()
    except Exception as exc:  # Pillow raises many types for damaged files
        raise ImageRejected(f"the {image.format} image is corrupt: {_clean(str(exc))}") from None


# --- analysis (in the worker) ------------------------------------------------------------------
def analyse(data: bytes, ctx: JobContext | None = None) -> dict[str, Any]:
    """The full result for one image (see the README for the fields)."""
    image = open_image(data)
    fmt = image.format or "?"
    mode = image.mode
    width, height = image.size
    frames = int(getattr(image, "n_frames", 1) or 1)
    exif = exif_summary(image)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Exception as exc:  # truncated or damaged pixel data
        raise ImageRejected(f"the {fmt} image could not be decoded: {_clean(str(exc))}") from None
    upright = image
    if exif["orientation"] not in (None, 1):
        try:
            upright = ImageOps.exif_transpose(image)
        except Exception:  # a broken orientation tag: analyse the image as stored
            exif["orientation"] = None
    _check_cancel(ctx)

    rgb, alpha = to_rgb(upright)
    opaque = composite_on_white(rgb, alpha)
    _check_cancel(ctx)
    colors = dominant_colors(rgb, alpha)
    _check_cancel(ctx)
    phash = perceptual_hash(opaque)
    _check_cancel(ctx)
    objects, detection = detect_objects(opaque)
    detection["exif_orientation_applied"] = upright is not image

    counts = {label: 0 for label in ("face", "eye", "full_body", "cat_face")}
    for obj in objects:
        counts[obj["label"]] += 1
    return {
        "format": fmt,
        "mime_type": ALLOWED_FORMATS.get(fmt, "application/octet-stream"),
        "width": width,
        "height": height,
        "mode": mode,
        "has_alpha": alpha is not None,
        "frames": frames,
        "file_size_bytes": len(data),
        "exif": exif,
        "dominant_colors": colors,
        "phash": phash,
        "objects": objects,
        "object_counts": counts,
        "detection": detection,
    }


def _check_cancel(ctx: JobContext | None) -> None:
    if ctx is not None:
        ctx.raise_if_cancelled()


_EXIF_IFD = 0x8769
_GPS_IFD = 0x8825
_TAG_MAKE, _TAG_MODEL, _TAG_DATETIME, _TAG_ORIENTATION, _TAG_SOFTWARE = 271, 272, 306, 274, 305
_TAG_DATETIME_ORIGINAL = 36867


def exif_summary(image: Image.Image) -> dict[str, Any]:
    """Camera make/model, date-times, orientation and whether GPS data is present.

    GPS coordinates are never returned, only ``gps_present``.
    """
    try:
        exif = image.getexif()
    except Exception:  # damaged EXIF must not fail the job
        exif = Image.Exif()
    try:
        sub = exif.get_ifd(_EXIF_IFD) if _EXIF_IFD in exif else {}
    except Exception:
        sub = {}
    try:
        gps = exif.get_ifd(_GPS_IFD) if _GPS_IFD in exif else {}
    except Exception:
        gps = {}
    orientation = exif.get(_TAG_ORIENTATION)
    if not isinstance(orientation, int) or not 1 <= orientation <= 8:
        orientation = None
    return {
        "present": len(exif) > 0,
        "make": _exif_text(exif.get(_TAG_MAKE)),
        "model": _exif_text(exif.get(_TAG_MODEL)),
        "software": _exif_text(exif.get(_TAG_SOFTWARE)),
        "datetime": _exif_text(exif.get(_TAG_DATETIME)),
        "datetime_original": _exif_text(sub.get(_TAG_DATETIME_ORIGINAL)),
        "orientation": orientation,
        "gps_present": bool(gps) or (_GPS_IFD in exif and not isinstance(exif[_GPS_IFD], int)),
    }


def _exif_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    text = _clean(str(value)).strip()
    return text[:128] or None


def _clean(text: str) -> str:
    """Text the database can store: no NUL, no lone surrogates."""
    return text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")


def to_rgb(image: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    """(H x W x 3 uint8 RGB, H x W uint8 alpha or None) for any Pillow mode."""
    import numpy as np

    if image.mode in ("I", "I;16", "I;16L", "I;16B", "I;16N", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if image.mode.startswith("I;16") else max(float(values.max()), 1.0)
        gray = np.clip(values / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), None
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        image.mode in ("P", "L", "RGB") and "transparency" in image.info
    )
    if has_alpha:
        rgba = np.asarray(image.convert("RGBA"))
        alpha = np.ascontiguousarray(rgba[:, :, 3])
        if alpha.min() == 255:
            return np.ascontiguousarray(rgba[:, :, :3]), None
        return np.ascontiguousarray(rgba[:, :, :3]), alpha
    return np.asarray(image.convert("RGB")), None


def composite_on_white(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    import numpy as np

    if alpha is None:
        return rgb
    height, width = rgb.shape[:2]
    base = Image.new("RGB", (width, height), (255, 255, 255))
    base.paste(Image.fromarray(rgb), mask=Image.fromarray(alpha))
    return np.asarray(base)


def _fit(width: int, height: int, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def dominant_colors(rgb: np.ndarray, alpha: np.ndarray | None) -> list[dict[str, Any]]:
    """Top COLOR_COUNT colours by k-means (seeded k-means++) on a small copy, ignoring pixels
    that are mostly transparent. Each entry: ``{"hex": "#rrggbb", "share": 0.0-1.0}``."""
    import numpy as np

    height, width = rgb.shape[:2]
    size = _fit(width, height, COLOR_SAMPLE_MAX_SIDE)
    small = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.BOX))
    pixels8 = small.reshape(-1, 3)
    if alpha is not None:
        small_alpha = np.asarray(Image.fromarray(alpha).resize(size, Image.Resampling.BOX))
        pixels8 = pixels8[small_alpha.reshape(-1) >= 128]
    if len(pixels8) == 0:
        return []
    packed = (pixels8[:, 0].astype(np.int64) << 16) | (pixels8[:, 1].astype(np.int64) << 8)
    distinct = int(np.unique(packed | pixels8[:, 2]).size)
    pixels = pixels8.astype(np.float64)
    k = min(COLOR_COUNT, distinct)
    centers, labels = _kmeans(pixels, k, COLOR_KMEANS_SEED, COLOR_KMEANS_MAX_ITER)
    counts = np.bincount(labels, minlength=len(centers))
    merged: dict[str, int] = {}
    for center, count in zip(centers, counts, strict=True):
        if count == 0:
            continue
        r, g, b = (int(v) for v in np.clip(np.rint(center), 0, 255))
        key = f"#{r:02x}{g:02x}{b:02x}"
        merged[key] = merged.get(key, 0) + int(count)
    total = len(pixels)
    ranked = sorted(merged.items(), key=lambda kv: (-kv[1], kv[0]))
    return [{"hex": key, "share": round(count / total, 4)} for key, count in ranked]


def _kmeans(points: np.ndarray, k: int, seed: int, max_iter: int) -> tuple[np.ndarray, np.ndarray]:
    """Plain Lloyd's k-means with k-means++ seeding from a fixed-seed generator: same input,
    same output. ``k`` must not exceed the number of distinct points."""
    import numpy as np

    rng = np.random.default_rng(seed)
    centers = [points[int(rng.integers(len(points)))]]
    closest = ((points - centers[0]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = closest.sum()
        if total <= 0:
            break
        chosen = points[int(rng.choice(len(points), p=closest / total))]
        centers.append(chosen)
        closest = np.minimum(closest, ((points - chosen) ** 2).sum(axis=1))
    center_arr = np.array(centers, dtype=np.float64)
    labels = np.zeros(len(points), dtype=np.int64)
    for iteration in range(max_iter):
        dists = ((points[:, None, :] - center_arr[None, :, :]) ** 2).sum(axis=2)
        new_labels = dists.argmin(axis=1)
        if iteration > 0 and np.array_equal(new_labels, labels):
            break
        labels = new_labels
        for j in range(len(center_arr)):
            members = points[labels == j]
            if len(members):
                center_arr[j] = members.mean(axis=0)
    return center_arr, labels


@functools.cache
def _dct_matrix(n: int) -> np.ndarray:
    """The unnormalised DCT-II matrix (scipy.fftpack.dct's convention): C[k, i] =
    2 cos(pi k (2i + 1) / 2n)."""
    import numpy as np

    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    return 2.0 * np.cos(np.pi * k * (2 * i + 1) / (2 * n))


def perceptual_hash(rgb: np.ndarray, hash_size: int = 8, highfreq_factor: int = 4) -> str:
    """64-bit DCT pHash as 16 hex digits; the same algorithm and bit order as
    ``imagehash.phash`` (grayscale, Lanczos resize to 32x32, 2-D DCT, the 8x8 lowest
    frequencies compared with their median)."""
    import numpy as np

    side = hash_size * highfreq_factor
    gray = Image.fromarray(rgb).convert("L").resize((side, side), Image.Resampling.LANCZOS)
    pixels = np.asarray(gray, dtype=np.float64)
    matrix = _dct_matrix(side)
    dct = matrix @ pixels @ matrix.T
    low = dct[:hash_size, :hash_size]
    bits = (low > np.median(low)).flatten()
    value = 0
    for bit in bits:
        value = (value << 1) | int(bit)
    return f"{value:0{hash_size * hash_size // 4}x}"


@functools.cache
def _cascade(filename: str) -> Any:
    """A loaded cascade, cached per worker process (loading the XML costs tens of ms)."""
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        raise RuntimeError(
            f"OpenCV {cv2.__version__} has no Haar cascades (removed in OpenCV 5); "
            "install opencv-python-headless>=4.10,<5"
        )
    path = cv2.data.haarcascades + filename
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise RuntimeError(f"OpenCV could not load the Haar cascade {path}")
    return classifier


def detect_objects(rgb: np.ndarray) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Faces, eyes (inside faces), full bodies and cat faces with OpenCV Haar cascades.

    Boxes are in pixels of the EXIF-oriented, full-size image. ``confidence_hint`` is the number
    of raw detection windows that were merged into the box (OpenCV's ``numDetections``): higher
    means more certain, but it is not a probability.
    """
    import cv2

    height, width = rgb.shape[:2]
    det_w, det_h = _fit(width, height, DETECTION_MAX_SIDE)
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if (det_w, det_h) != (width, height):
        gray = cv2.resize(gray, (det_w, det_h), interpolation=cv2.INTER_AREA)
    gray = cv2.equalizeHist(gray)
    sx, sy = width / det_w, height / det_h

    def to_box(x: float, y: float, w: float, h: float) -> dict[str, int]:
        x0, y0 = max(0, round(x * sx)), max(0, round(y * sy))
        x1, y1 = min(width, round((x + w) * sx)), min(height, round((y + h) * sy))
        return {"x": x0, "y": y0, "width": max(0, x1 - x0), "height": max(0, y1 - y0)}

    objects: list[dict[str, Any]] = []
    for label in ("face", "full_body", "cat_face"):
        params = CASCADES[label]
        found = _detect(gray, params["file"], params)
        for (x, y, w, h), hits in found[:MAX_OBJECTS_PER_LABEL]:
            objects.append({"label": label, "box": to_box(x, y, w, h), "confidence_hint": hits})
            if label == "face":
                objects.extend(_eyes(gray, (x, y, w, h), to_box))
    objects.sort(key=lambda o: (o["label"], -o["confidence_hint"], o["box"]["y"], o["box"]["x"]))
    detection = {
        "engine": f"opencv-haar {cv2.__version__}",
        "box_space_width": width,
        "box_space_height": height,
        "detection_width": det_w,
        "detection_height": det_h,
        "scale": round(det_w / width, 6),
    }
    return objects, detection


def _detect(
    gray: np.ndarray, filename: str, params: dict[str, Any], **extra: Any
) -> list[tuple[tuple[int, int, int, int], int]]:
    cascade = _cascade(filename)
    kwargs = {
        "scaleFactor": params["scaleFactor"],
        "minNeighbors": params["minNeighbors"],
        "minSize": extra.get("minSize", params.get("minSize", (0, 0))),
    }
    if "maxSize" in extra:
        kwargs["maxSize"] = extra["maxSize"]
    rects, hits = cascade.detectMultiScale2(gray, **kwargs)
    found = [
        ((int(x), int(y), int(w), int(h)), int(n))
        for (x, y, w, h), n in zip(rects, hits, strict=True)
    ]
    found.sort(key=lambda item: (-item[1], -item[0][2] * item[0][3], item[0][1], item[0][0]))
    return found


def _eyes(gray: np.ndarray, face: tuple[int, int, int, int], to_box: Any) -> list[dict[str, Any]]:
    fx, fy, fw, fh = face
    region = gray[fy : fy + max(1, int(fh * EYE_REGION_FRACTION)), fx : fx + fw]
    min_side = max(8, fw // 10)
    max_side = max(min_side + 1, fw // 2)
    if region.shape[0] < min_side or region.shape[1] < min_side:
        return []
    found = _detect(
        region,
        EYE_CASCADE["file"],
        EYE_CASCADE,
        minSize=(min_side, min_side),
        maxSize=(max_side, max_side),
    )
    return [
        {"label": "eye", "box": to_box(fx + x, fy + y, w, h), "confidence_hint": hits}
        for (x, y, w, h), hits in found[:MAX_EYES_PER_FACE]
    ]
