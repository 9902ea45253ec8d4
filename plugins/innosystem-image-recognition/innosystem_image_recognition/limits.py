"""Limits and detector parameters of ``image-recog-v2`` (plain constants: cheap to import)."""

from __future__ import annotations

import math
from typing import Any

#: Largest accepted image file, in bytes, after base64 decoding (10 MiB).
MAX_IMAGE_BYTES = 10 * 1024 * 1024
#: Largest accepted image, in pixels (width x height of the first frame): 40 megapixels.
MAX_PIXELS = 40_000_000
#: Longest accepted ``image_base64`` string. The base64 of MAX_IMAGE_BYTES is
#: 4 * ceil(MAX_IMAGE_BYTES / 3) characters; the rest leaves room for MIME line breaks and a
#: ``data:`` prefix. The decoded size is checked separately and exactly.
MAX_BASE64_CHARS = 4 * math.ceil(MAX_IMAGE_BYTES / 3) + 512 * 1024
#: Pillow format name -> MIME type of the formats this processor accepts.
ALLOWED_FORMATS: dict[str, str] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "WEBP": "image/webp",
}

#: Object detection runs on a copy whose longer side is at most this many pixels (never
#: upscaled); boxes are mapped back to the full-size, EXIF-oriented image.
DETECTION_MAX_SIDE = 800
#: Dominant colours are computed on a copy whose longer side is at most this many pixels.
COLOR_SAMPLE_MAX_SIDE = 96
#: Number of dominant colours (k of k-means) and the k-means settings.
COLOR_COUNT = 5
COLOR_KMEANS_SEED = 0
COLOR_KMEANS_MAX_ITER = 30
#: At most this many boxes per label are returned (the strongest first).
MAX_OBJECTS_PER_LABEL = 50

#: OpenCV Haar cascades (files under ``cv2.data.haarcascades``) and the arguments of
#: ``CascadeClassifier.detectMultiScale2``. Sizes are in pixels of the detection copy.
CASCADES: dict[str, dict[str, Any]] = {
    "face": {
        "file": "haarcascade_frontalface_default.xml",
        "scaleFactor": 1.1,
        "minNeighbors": 5,
        "minSize": (24, 24),
    },
    "full_body": {
        "file": "haarcascade_fullbody.xml",
        "scaleFactor": 1.05,
        "minNeighbors": 3,
        "minSize": (28, 56),
    },
    "cat_face": {
        "file": "haarcascade_frontalcatface.xml",
        "scaleFactor": 1.1,
        "minNeighbors": 3,
        "minSize": (32, 32),
    },
}
#: Eyes are searched only inside each detected face, in its upper EYE_REGION_FRACTION; the
#: minimum eye size is face width / 10 (at least 8 px), the maximum face width / 2; at most
#: MAX_EYES_PER_FACE eyes (the strongest) are kept per face.
EYE_CASCADE: dict[str, Any] = {
    "file": "haarcascade_eye.xml",
    "scaleFactor": 1.1,
    "minNeighbors": 5,
}
EYE_REGION_FRACTION = 0.6
MAX_EYES_PER_FACE = 2
