"""Tests of example-word-count-v1: called directly, and run as jobs by a real in-process
InnoSystem through the ``innosystem_*`` fixtures (installed with innosystem, nothing to import
for the fixtures themselves)."""

from __future__ import annotations

import csv
import io

import pytest
from innosystem.errors import ValidationFailed
from innosystem.testing import innosystem_artifact_bytes, innosystem_job_context

from innosystem_example import WordCount

PROC = WordCount()


# --- direct calls: fast, no app -----------------------------------------------------------------
def test_input_is_validated_and_defaults_filled():
    assert PROC.validate_input({"text": "a b"}) == {
        "text": "a b",
        "top": 10,
        "case_sensitive": False,
        "write_csv": False,
    }
    with pytest.raises(ValidationFailed) as info:
        PROC.validate_input({"text": "1 2 3", "top": 0})
    assert sorted(d["field"] for d in info.value.details) == ["input_data.text", "input_data.top"]


@pytest.mark.asyncio
async def test_counts_words_directly():
    progress: list[dict] = []
    ctx = innosystem_job_context(progress=progress)
    data = PROC.validate_input({"text": "The cat saw the other cat. THE END", "top": 2})

    result = await PROC.process(ctx, data)

    assert result == {
        "words": 8,
        "distinct": 5,
        "top": [{"word": "the", "count": 3}, {"word": "cat", "count": 2}],
    }
    assert progress == [{"words": 8}]


@pytest.mark.asyncio
async def test_writes_a_csv_artifact_directly():
    ctx = innosystem_job_context()
    data = PROC.validate_input({"text": "b a b", "write_csv": True})

    result = await PROC.process(ctx, data)

    assert result["csv"]["name"] == "counts.csv"
    rows = list(csv.reader(io.StringIO(innosystem_artifact_bytes(ctx, "counts.csv").decode())))
    assert rows == [["word", "count"], ["b", "2"], ["a", "1"]]


# --- through a real InnoSystem: API, database, queue and worker ---------------------------------
@pytest.mark.asyncio
async def test_job_succeeds(innosystem_run_job):
    job = await innosystem_run_job("example-word-count-v1", {"text": "to be or not to be"})

    assert job["status"] == "succeeded", job["error"]
    assert job["result"]["top"][:2] == [{"word": "be", "count": 2}, {"word": "to", "count": 2}]


@pytest.mark.asyncio
async def test_job_csv_is_served(innosystem_run_job, innosystem_client):
    job = await innosystem_run_job("example-word-count-v1", {"text": "x y x", "write_csv": True})
    assert job["status"] == "succeeded", job["error"]

    response = await innosystem_client.get(f"/jobs/{job['id']}/artifacts/counts.csv")

    assert response.status_code == 200
    assert (await response.get_data()).decode() == "word,count\r\nx,2\r\ny,1\r\n"


@pytest.mark.asyncio
async def test_bad_input_is_refused_at_submit(
    innosystem_client, innosystem_tenant, innosystem_create_job_type
):
    job_type = await innosystem_create_job_type("example-word-count-v1")
    response = await innosystem_client.post(
        "/jobs",
        json={
            "customer_id": innosystem_tenant["customer_id"],
            "job_type_id": job_type["id"],
            "input_data": {"text": "   "},
        },
    )

    assert response.status_code == 422
    details = (await response.get_json())["error"]["details"]
    assert [d["field"] for d in details] == ["input_data.text"]


@pytest.mark.asyncio
async def test_listed_by_get_processors(innosystem_client):
    items = (await (await innosystem_client.get("/processors")).get_json())["items"]
    mine = next(p for p in items if p["logic_id"] == "example-word-count-v1")
    assert mine["package"] == "innosystem-example"
    assert mine["input_schema"]["required"] == ["text"]
