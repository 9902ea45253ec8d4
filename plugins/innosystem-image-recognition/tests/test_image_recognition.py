"""Tests of the image-recog-v2 processor on real photographs (scikit-image's bundled samples)."""

from __future__ import annotations

import base64
import io
import json
import multiprocessing
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from functools import cache
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
import pytest
import skimage.data
from innosystem_image_recognition import (
    MAX_IMAGE_BYTES,
    MAX_PIXELS,
    ImageRecognition,
    innosystem_processors,
)
from PIL import Image

import innosystem.plugins
from innosystem import JobContext, PermanentError
from innosystem.artifacts import JobArtifacts, LocalArtifactStore, UploadNotFound, upload_key
from innosystem.errors import ValidationFailed
from innosystem.services.jobs import run_in_child

PROC = ImageRecognition()
#: Where the astronaut's face really is in skimage.data.astronaut() (x, y, width, height),
#: measured by eye: hairline to chin, ear to ear.
ASTRONAUT_FACE = (172, 65, 105, 115)


def ctx() -> JobContext:
    return JobContext(
        job_id=uuid4(), attempt=1, job_type_id=uuid4(), customer_id=uuid4(), runner_id="test"
    )


def encode(image: Image.Image | np.ndarray, fmt: str, **save: object) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, fmt, **save)
    return buf.getvalue()


def b64(data: bytes) -> dict[str, str]:
    return {"image_base64": base64.b64encode(data).decode("ascii")}


@cache
def astronaut_jpeg() -> bytes:
    return encode(skimage.data.astronaut(), "JPEG", quality=90)


@cache
def astronaut_result() -> dict:
    return run(astronaut_jpeg())


def run(data: bytes) -> dict:
    """Submit-time validation, then the processor, as the platform does."""
    validated = PROC.validate_input(b64(data))
    result = PROC.process(ctx(), validated)
    json.dumps(result, allow_nan=False)  # storable JSON
    return result


def rejected(input_data: object) -> ValidationFailed:
    with pytest.raises(ValidationFailed) as info:
        PROC.validate_input(input_data)
    assert info.value.status == 422
    assert info.value.details, "a 422 must say which field is wrong"
    assert all(d["field"].startswith("input_data") for d in info.value.details)
    return info.value


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, w, h) boxes."""
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def box(obj: dict) -> tuple[int, int, int, int]:
    b = obj["box"]
    return (b["x"], b["y"], b["width"], b["height"])


# --- real photographs ---------------------------------------------------------------------------
def test_astronaut_face_eyes_and_metadata() -> None:
    result = astronaut_result()
    assert result["format"] == "JPEG"
    assert result["mime_type"] == "image/jpeg"
    assert (result["width"], result["height"], result["mode"]) == (512, 512, "RGB")
    assert result["file_size_bytes"] == len(astronaut_jpeg())
    assert result["exif"]["present"] is False
    faces = [o for o in result["objects"] if o["label"] == "face"]
    assert faces, result["objects"]
    best = max(overlap(box(f), ASTRONAUT_FACE) for f in faces)
    assert best > 0.5, (faces, best)
    assert all(isinstance(f["confidence_hint"], int) and f["confidence_hint"] >= 5 for f in faces)
    # Eyes are searched only inside faces: each lies in the upper part of the real face.
    eyes = [o for o in result["objects"] if o["label"] == "eye"]
    assert 1 <= len(eyes) <= 2 * len(faces)
    fx, fy, fw, fh = ASTRONAUT_FACE
    for eye in eyes:
        x, y, w, h = box(eye)
        assert fx <= x + w / 2 <= fx + fw and fy <= y + h / 2 <= fy + fh * 0.6, eye
    assert result["object_counts"]["face"] == len(faces)
    assert result["object_counts"]["eye"] == len(eyes)
    # She is a head-and-shoulders portrait: no full body, and no cat.
    assert result["object_counts"]["full_body"] == 0
    assert result["object_counts"]["cat_face"] == 0
    detection = result["detection"]
    assert detection["scale"] == 1.0  # 512 px is under the 800 px detection side
    assert detection["exif_orientation_applied"] is False
    assert (detection["box_space_width"], detection["box_space_height"]) == (512, 512)


def test_astronaut_dominant_colours() -> None:
    colours = astronaut_result()["dominant_colors"]
    assert len(colours) == 5
    assert all(len(c["hex"]) == 7 and c["hex"].startswith("#") for c in colours)
    assert [c["share"] for c in colours] == sorted((c["share"] for c in colours), reverse=True)
    assert sum(c["share"] for c in colours) == pytest.approx(1.0, abs=0.001)
    rgb = [tuple(int(c["hex"][i : i + 2], 16) for i in (1, 3, 5)) for c in colours]
    assert any(sum(c) < 100 for c in rgb), "the black collar is one of the dominant colours"
    assert any(r > 180 and r > g + 60 > b + 60 for r, g, b in rgb), "so is the orange suit"


def test_chelsea_the_cat() -> None:
    """The frontal cat-face cascade does NOT find Chelsea: her face fills the frame and her ears
    are cut off, while the cascade was trained on whole, smaller cat faces. No human face is
    reported either. The result is what the documented detector really does."""
    result = run(encode(skimage.data.chelsea(), "PNG"))
    assert (result["format"], result["width"], result["height"]) == ("PNG", 451, 300)
    assert result["object_counts"] == {"face": 0, "eye": 0, "full_body": 0, "cat_face": 0}
    assert result["objects"] == []
    r, g, b = (int(result["dominant_colors"][0]["hex"][i : i + 2], 16) for i in (1, 3, 5))
    assert r > g > b, "a tabby cat is brown"


def test_phash_is_perceptual_and_deterministic() -> None:
    jpeg = astronaut_result()
    png = run(encode(skimage.data.astronaut(), "PNG"))
    cat = run(encode(skimage.data.chelsea(), "PNG"))
    for result in (jpeg, png, cat):
        assert len(result["phash"]) == 16
        int(result["phash"], 16)

    def distance(a: str, b: str) -> int:
        return bin(int(a, 16) ^ int(b, 16)).count("1")

    assert distance(jpeg["phash"], png["phash"]) <= 6  # same photo, different codec
    assert distance(jpeg["phash"], cat["phash"]) >= 20  # different photos
    # Same bytes, same result, down to the colours and boxes.
    assert run(astronaut_jpeg()) == jpeg
    assert run(encode(skimage.data.astronaut(), "PNG")) == png


# --- formats, EXIF ------------------------------------------------------------------------------
def test_webp_round_trip_with_alpha() -> None:
    rgba = Image.fromarray(skimage.data.astronaut()).resize((256, 256)).convert("RGBA")
    rgba.putalpha(Image.new("L", rgba.size, 255))
    rgba.paste((0, 0, 0, 0), (0, 208, 256, 256))  # bottom rows fully transparent
    data = encode(rgba, "WEBP", lossless=True)
    result = run(data)
    assert result["format"] == "WEBP"
    assert result["mime_type"] == "image/webp"
    assert (result["width"], result["height"], result["mode"]) == (256, 256, "RGBA")
    assert result["has_alpha"] is True
    assert result["frames"] == 1
    assert result["file_size_bytes"] == len(data)
    assert len(result["dominant_colors"]) == 5
    assert any(o["label"] == "face" for o in result["objects"])
    assert run(data) == result


def test_exif_summary_reports_gps_presence_but_never_coordinates() -> None:
    exif = Image.Exif()
    exif[271] = "InnoCam"  # Make
    exif[272] = "Model X1"  # Model
    exif[306] = "2024:05:06 07:08:09"  # DateTime
    exif[274] = 1  # Orientation
    exif[0x8825] = {1: "N", 2: (52.0, 31.0, 12.345678), 3: "E", 4: (13.0, 24.0, 56.789012)}
    data = encode(skimage.data.chelsea(), "JPEG", quality=85, exif=exif.tobytes())
    result = run(data)
    assert result["exif"] == {
        "present": True,
        "make": "InnoCam",
        "model": "Model X1",
        "software": None,
        "datetime": "2024:05:06 07:08:09",
        "datetime_original": None,
        "orientation": 1,
        "gps_present": True,
    }
    text = json.dumps(result)
    for secret in ("12.345678", "56.789012", "Latitude", "Longitude"):
        assert secret not in text

    without_gps = Image.Exif()
    without_gps[271] = "InnoCam"
    plain = run(encode(skimage.data.chelsea(), "JPEG", exif=without_gps.tobytes()))
    assert plain["exif"]["make"] == "InnoCam"
    assert plain["exif"]["gps_present"] is False


def test_exif_orientation_is_applied_before_detection() -> None:
    """A photo stored sideways (Orientation 6 = rotate 90 degrees clockwise to display): width
    and height are the stored ones, boxes are in the upright image, and the face is found."""
    upright = Image.fromarray(skimage.data.astronaut()[:384])  # 512 wide, 384 high
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what a sideways camera writes
    exif = Image.Exif()
    exif[274] = 6
    result = run(encode(stored, "JPEG", quality=90, exif=exif.tobytes()))
    assert (result["width"], result["height"]) == (384, 512)
    assert result["exif"]["orientation"] == 6
    detection = result["detection"]
    assert detection["exif_orientation_applied"] is True
    assert (detection["box_space_width"], detection["box_space_height"]) == (512, 384)
    faces = [o for o in result["objects"] if o["label"] == "face"]
    assert faces and max(overlap(box(f), ASTRONAUT_FACE) for f in faces) > 0.5


# --- refused at submit (422) --------------------------------------------------------------------
def test_corrupt_png_is_refused_at_submit() -> None:
    png = encode(skimage.data.chelsea(), "PNG")
    err = rejected(b64(png[: len(png) // 2]))
    assert err.details[0]["field"] == "input_data.image_base64"
    assert "corrupt" in err.details[0]["message"]

    damaged = bytearray(png)
    damaged[len(png) // 2] ^= 0xFF  # flips bits inside the pixel data: the chunk CRC fails
    assert "corrupt" in rejected(b64(bytes(damaged))).details[0]["message"]


def test_non_images_and_bad_base64_are_refused() -> None:
    msg = rejected(b64(b"this is plain text, not a picture")).details[0]["message"]
    assert "not a readable PNG, JPEG or WebP image" in msg
    gif = encode(Image.new("RGB", (8, 8)), "GIF")
    assert "GIF images are not supported" in rejected(b64(gif)).details[0]["message"]
    assert "not valid base64" in rejected({"image_base64": "@@not base64@@"}).details[0]["message"]
    rejected({"image_base64": ""})
    rejected({})  # missing field
    rejected({"image_base64": 12})
    err = rejected({**b64(astronaut_jpeg()), "artifact_id": "x"})  # not a UUID
    assert err.details[0]["field"] == "input_data.artifact_id"


def test_oversized_input_is_refused() -> None:
    too_big = b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES)  # JPEG magic, 10 MiB + 3 bytes
    assert "larger than the limit" in rejected(b64(too_big)).details[0]["message"]
    # Few bytes but too many pixels: a plain PNG just over 40 megapixels.
    huge = encode(Image.new("1", (8000, MAX_PIXELS // 8000 + 1)), "PNG")
    assert len(huge) < MAX_IMAGE_BYTES
    assert "megapixels" in rejected(b64(huge)).details[0]["message"]


def test_accepted_encodings_are_normalised() -> None:
    data = encode(skimage.data.chelsea()[:64, :64], "PNG")
    standard = base64.b64encode(data).decode()
    for variant in (
        "data:image/png;base64," + standard,
        "\n".join(standard[i : i + 76] for i in range(0, len(standard), 76)),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
    ):
        assert PROC.validate_input({"image_base64": variant}) == {"image_base64": standard}


# --- failures inside the worker are permanent, never a crash -----------------------------------
def test_damage_found_only_when_running_is_a_permanent_error() -> None:
    """A truncated JPEG passes the cheap submit check (verify() does not decode JPEG data); the
    full decode in the worker fails it permanently with a clear message."""
    truncated = astronaut_jpeg()[:4000]
    validated = PROC.validate_input(b64(truncated))
    with pytest.raises(PermanentError, match="could not be decoded"):
        PROC.process(ctx(), validated)
    # Input that never went through validation (e.g. a job type created before the plugin was
    # installed) is checked again in the worker.
    with pytest.raises(PermanentError, match="not a readable"):
        PROC.process(ctx(), b64(b"garbage"))
    with pytest.raises(PermanentError, match="input_data"):
        PROC.process(ctx(), {"image": "x"})


# --- artifact_id: the image is an upload (POST /artifacts) ----------------------------------
@cache
def astronaut_png() -> bytes:
    return encode(skimage.data.astronaut(), "PNG")


def artifact_ctx(tmp_path: Path, customer_id: UUID) -> JobContext:
    """A context whose ``ctx.artifacts`` reads uploads from a LocalArtifactStore in tmp_path."""
    job_id = uuid4()
    return JobContext(
        job_id=job_id,
        attempt=1,
        job_type_id=uuid4(),
        customer_id=customer_id,
        runner_id="test",
        artifacts=JobArtifacts(
            store=LocalArtifactStore(tmp_path),
            job_id=job_id,
            attempt=1,
            customer_id=customer_id,
            max_bytes=50 * 1024 * 1024,
        ),
    )


def store_upload(tmp_path: Path, customer_id: UUID, data: bytes) -> UUID:
    """Put bytes where POST /artifacts puts an upload of this customer; returns its id."""
    artifact_id = uuid4()
    LocalArtifactStore(tmp_path).put(upload_key(customer_id, artifact_id), data)
    return artifact_id


def test_artifact_id_input_finds_the_face(tmp_path: Path) -> None:
    cid = uuid4()
    aid = store_upload(tmp_path, cid, astronaut_png())
    validated = PROC.validate_input({"artifact_id": str(aid)})
    assert validated == {"artifact_id": str(aid)}  # no null image_base64 reaches the processor
    result = PROC.process(artifact_ctx(tmp_path, cid), validated)
    json.dumps(result, allow_nan=False)
    assert (result["format"], result["width"], result["height"]) == ("PNG", 512, 512)
    assert result["file_size_bytes"] == len(astronaut_png())
    faces = [o for o in result["objects"] if o["label"] == "face"]
    assert faces and max(overlap(box(f), ASTRONAUT_FACE) for f in faces) > 0.5
    # Same bytes, same result, whichever way they arrive.
    assert result == run(astronaut_png())
    # Other spellings of the UUID are normalised at submit.
    assert PROC.validate_input({"artifact_id": aid.hex.upper()}) == {"artifact_id": str(aid)}


def test_unknown_or_foreign_upload_is_a_permanent_error(tmp_path: Path) -> None:
    cid = uuid4()
    with pytest.raises(UploadNotFound):
        PROC.process(artifact_ctx(tmp_path, cid), {"artifact_id": str(uuid4())})
    # Another customer's upload is not found either (keys are per customer).
    other = store_upload(tmp_path, uuid4(), astronaut_png())
    with pytest.raises(PermanentError, match="no upload"):
        PROC.process(artifact_ctx(tmp_path, cid), {"artifact_id": str(other)})
    assert issubclass(UploadNotFound, PermanentError)


def test_bad_uploads_fail_the_job_permanently(tmp_path: Path) -> None:
    """What submit cannot check for an upload is checked in the worker, with the base64 rules."""
    cid = uuid4()
    png = encode(skimage.data.chelsea(), "PNG")
    cases = {
        b"this is plain text, not a picture": "not a readable PNG, JPEG or WebP image",
        encode(Image.new("RGB", (8, 8)), "GIF"): "GIF images are not supported",
        png[: len(png) // 2]: "PNG image is corrupt",
        b"\xff\xd8\xff" + bytes(MAX_IMAGE_BYTES): "larger than the limit of 10485760 bytes",
        encode(Image.new("1", (8000, MAX_PIXELS // 8000 + 1)), "PNG"): "megapixels",
        astronaut_jpeg()[:4000]: "could not be decoded",  # only a full decode finds this
    }
    for data, message in cases.items():
        aid = store_upload(tmp_path, cid, data)
        with pytest.raises(PermanentError, match=message) as info:
            PROC.process(artifact_ctx(tmp_path, cid), {"artifact_id": str(aid)})
        assert not isinstance(info.value, UploadNotFound)
        if message != "could not be decoded":
            assert f"upload {aid}" in str(info.value)


def test_exactly_one_image_source_is_required() -> None:
    aid = str(uuid4())
    both = rejected({**b64(astronaut_jpeg()), "artifact_id": aid})
    assert both.details == [
        {
            "field": "input_data",
            "message": "give exactly one of image_base64 and artifact_id (both were given)",
        }
    ]
    neither = rejected({})
    assert "neither was given" in neither.details[0]["message"]
    assert rejected({"image_base64": None, "artifact_id": None}).details[0]["field"] == "input_data"
    for bad in ("not-a-uuid", "", 12, [aid], {"id": aid}):
        err = rejected({"artifact_id": bad})
        assert err.details[0]["field"] == "input_data.artifact_id", bad
    rejected({"artifact_id": aid, "extra": 1})
    # In the worker, unvalidated input gets the same rule.
    with pytest.raises(PermanentError, match="exactly one"):
        PROC.process(ctx(), {**b64(astronaut_jpeg()), "artifact_id": aid})


@pytest.mark.asyncio
async def test_uploaded_image_through_the_real_app(
    innosystem_client, innosystem_tenant, innosystem_run_job
) -> None:
    """POST /artifacts, then an image-recog-v2 job naming it, on the in-process platform (CPU
    pool included); a non-image upload fails the job permanently."""
    client = innosystem_client
    customer_id = innosystem_tenant["customer_id"]

    async def upload(name: str, data: bytes, content_type: str) -> str:
        response = await client.post(
            f"/artifacts?customer_id={customer_id}&name={name}",
            data=data,
            headers={"Content-Type": content_type},
        )
        body = await response.get_json()
        assert response.status_code == 201, body
        return body["id"]

    aid = await upload("astronaut.png", astronaut_png(), "image/png")
    job = await innosystem_run_job("image-recog-v2", {"artifact_id": aid}, wait_seconds=120)
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert (result["format"], result["width"], result["height"]) == ("PNG", 512, 512)
    faces = [o for o in result["objects"] if o["label"] == "face"]
    assert faces and max(overlap(box(f), ASTRONAUT_FACE) for f in faces) > 0.5

    text = await upload("notes.txt", b"not a picture", "text/plain")
    job = await innosystem_run_job("image-recog-v2", {"artifact_id": text}, wait_seconds=120)
    assert job["status"] == "failed", job
    assert job["error"]["type"] == "permanent", job
    assert "not a readable PNG, JPEG or WebP image" in job["error"]["message"]
    assert job["attempts"] == 1

    missing = await innosystem_run_job(
        "image-recog-v2", {"artifact_id": str(uuid4())}, wait_seconds=120
    )
    assert missing["status"] == "failed" and missing["error"]["type"] == "permanent", missing


# --- the platform's way of running it ----------------------------------------------------------
def test_hook_and_schema() -> None:
    [proc] = innosystem_processors()
    info = proc.describe()
    assert (info["logic_id"], info["processor_type"], info["kind"]) == (
        "image-recog-v2",
        "async",
        "cpu",
    )
    schema = info["input_schema"]
    assert set(schema["properties"]) == {"image_base64", "artifact_id"}
    assert "required" not in schema  # exactly one of the two, expressed as oneOf
    assert schema["oneOf"] == [{"required": ["image_base64"]}, {"required": ["artifact_id"]}]
    assert schema["additionalProperties"] is False


def test_run_in_child_resolves_the_processor_from_the_registry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(innosystem.plugins, "_registry", None)  # restored after the test
    validated = PROC.validate_input(b64(astronaut_jpeg()))
    fields = (str(uuid4()), 1, str(uuid4()), str(uuid4()), "t")
    result = run_in_child("image-recog-v2", validated, fields)
    assert result == astronaut_result()


def test_runs_in_a_forkserver_pool_like_the_platform() -> None:
    """Result and PermanentError both cross the process boundary of the CPU pool."""
    small = PROC.validate_input(b64(encode(skimage.data.chelsea()[::4, ::4], "PNG")))
    fields = (str(uuid4()), 1, str(uuid4()), str(uuid4()), "t")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("forkserver"))
    with pool:
        ok = pool.submit(run_in_child, "image-recog-v2", small, fields).result(timeout=120)
        bad = pool.submit(run_in_child, "image-recog-v2", b64(b"nope"), fields)
        with pytest.raises(PermanentError, match="not a readable"):
            bad.result(timeout=120)
    assert ok["format"] == "PNG" and ok["width"] == 113


def test_plugin_import_is_light() -> None:
    code = (
        "import sys, innosystem_image_recognition as m; m.innosystem_processors(); "
        "print(sorted(x for x in ('cv2', 'numpy', 'PIL', 'scipy') if x in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
