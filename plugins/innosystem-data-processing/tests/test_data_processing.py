"""Tests of data-proc-v1 on real CSV, JSON and Parquet data, called directly and (for uploads)
through the real in-process app."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from innosystem import JobContext, PermanentError, jsonsafe
from innosystem.artifacts import JobArtifacts, LocalArtifactStore, upload_key
from innosystem.errors import ValidationFailed

import innosystem_data_processing
from innosystem_data_processing import MAX_DATASET_BYTES, DataProcessing, engine

PROC = DataProcessing()

PEOPLE_CSV = """id,name,score,joined,mixed,ratio
1,Alice,10.5,2024-01-15,42,
2,Bob,,2024-02-20,abc,0.5
3,,7.25,2023-12-01,17,1.5
4,Dave,3,,x9,
5,Alice,10.5,2024-03-10,,2
"""

ORDERS = [
    {"order_id": 1, "person_id": 1, "total": 9.5, "placed": "2024-04-01"},
    {"order_id": 2, "person_id": 1, "total": 0.5, "placed": "2024-04-03", "note": "gift"},
    {"order_id": 3, "person_id": 3, "total": 5, "placed": None},
    {"order_id": 4, "person_id": 9, "total": 2.25, "placed": "2024-05-20", "note": "gift"},
]


def make_ctx(
    progress: list[dict[str, Any]] | None = None, artifacts: JobArtifacts | None = None
) -> JobContext:
    customer_id = artifacts.customer_id if artifacts is not None else uuid4()
    ctx = JobContext(
        job_id=uuid4(),
        attempt=1,
        job_type_id=uuid4(),
        customer_id=customer_id,
        runner_id="test",
        artifacts=artifacts,
    )
    if progress is not None:
        ctx._progress = progress.append
    return ctx


@pytest.fixture(scope="module")
def cities_parquet(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real Parquet file written by DuckDB's COPY ... TO, as base64."""
    import duckdb

    path = tmp_path_factory.mktemp("parquet") / "cities.parquet"
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT * FROM (VALUES
              (1, 'Paris', 12.50::DECIMAL(10, 2), TIMESTAMP '2024-01-01 10:00:00', true),
              (2, 'Lyon', NULL, TIMESTAMP '2024-06-30 23:59:59', false),
              (3, 'Paris', 7.25::DECIMAL(10, 2), NULL, true)
            ) t(city_id, city, amount, seen, active)) TO '{path}' (FORMAT parquet)"""
    )
    con.close()
    return base64.b64encode(path.read_bytes()).decode("ascii")


def run(items: list[dict[str, Any]], query: str | None = None, **kw: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"items": items}
    if query is not None:
        data["query"] = query
    validated = PROC.validate_input(data)
    result = PROC.process(make_ctx(**kw), validated)
    # what the platform demands of every result
    json.dumps(result, allow_nan=False)
    assert jsonsafe.problems(result, "result") == []
    return result


def people() -> dict[str, str]:
    return {"name": "people", "format": "csv", "content": PEOPLE_CSV}


def orders() -> dict[str, str]:
    return {"name": "orders", "format": "json", "content": json.dumps(ORDERS)}


def column(dataset: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in dataset["columns"] if c["name"] == name)


# --- statistics ---------------------------------------------------------------------------------
def test_csv_schema_and_stats_are_exact() -> None:
    progress: list[dict[str, Any]] = []
    result = run([people()], progress=progress)
    (ds,) = result["datasets"]
    assert ds["status"] == "ok"
    assert ds["row_count"] == 5
    assert ds["schema"] == [
        {"name": "id", "type": "BIGINT"},
        {"name": "name", "type": "VARCHAR"},
        {"name": "score", "type": "DOUBLE"},
        {"name": "joined", "type": "DATE"},
        {"name": "mixed", "type": "VARCHAR"},
        {"name": "ratio", "type": "DOUBLE"},
    ]
    assert column(ds, "id") == {
        "name": "id",
        "type": "BIGINT",
        "kind": "numeric",
        "null_count": 0,
        "distinct_count": 5,
        "min": 1,
        "max": 5,
        "mean": 3.0,
        "std": pytest.approx(1.5811388300841898, rel=1e-12),
    }
    score = column(ds, "score")
    assert (score["null_count"], score["distinct_count"]) == (1, 3)
    assert (score["min"], score["max"], score["mean"]) == (3.0, 10.5, 7.8125)
    assert score["std"] == pytest.approx(3.555365663331973, rel=1e-12)
    assert column(ds, "joined") == {
        "name": "joined",
        "type": "DATE",
        "kind": "temporal",
        "null_count": 1,
        "distinct_count": 4,
        "min": "2023-12-01",
        "max": "2024-03-10",
    }
    assert column(ds, "name") == {
        "name": "name",
        "type": "VARCHAR",
        "kind": "text",
        "null_count": 1,
        "distinct_count": 3,
        "top_values": [
            {"value": "Alice", "count": 2},
            {"value": "Bob", "count": 1},
            {"value": "Dave", "count": 1},
        ],
    }
    # numbers and text in one column: text, counted as text
    mixed = column(ds, "mixed")
    assert (mixed["type"], mixed["kind"], mixed["null_count"]) == ("VARCHAR", "text", 1)
    assert mixed["distinct_count"] == 4
    assert [v["value"] for v in mixed["top_values"]] == ["17", "42", "abc", "x9"]
    ratio = column(ds, "ratio")
    assert (ratio["null_count"], ratio["min"], ratio["max"]) == (2, 0.5, 2.0)
    assert ratio["mean"] == pytest.approx(4 / 3, rel=1e-12)
    assert result["query_result"] is None
    assert result["summary"] == {"total": 1, "succeeded": 1, "failed": 0}
    assert progress == [
        {"total": 1, "succeeded": 0, "failed": 0},
        {"total": 1, "succeeded": 1, "failed": 0},
    ]


def test_json_array_of_objects() -> None:
    (ds,) = run([orders()])["datasets"]
    assert ds["row_count"] == 4
    assert ds["schema"] == [
        {"name": "order_id", "type": "BIGINT"},
        {"name": "person_id", "type": "BIGINT"},
        {"name": "total", "type": "DOUBLE"},
        {"name": "placed", "type": "DATE"},
        {"name": "note", "type": "VARCHAR"},
    ]
    total = column(ds, "total")
    assert (total["min"], total["max"], total["mean"]) == (0.5, 9.5, 4.3125)
    assert column(ds, "placed")["min"] == "2024-04-01"
    assert column(ds, "placed")["null_count"] == 1
    assert column(ds, "note")["null_count"] == 2
    assert column(ds, "note")["top_values"] == [{"value": "gift", "count": 2}]


def test_parquet(cities_parquet: str) -> None:
    (ds,) = run([{"name": "cities", "format": "parquet", "content": cities_parquet}])["datasets"]
    assert ds["row_count"] == 3
    assert ds["schema"] == [
        {"name": "city_id", "type": "INTEGER"},
        {"name": "city", "type": "VARCHAR"},
        {"name": "amount", "type": "DECIMAL(10,2)"},
        {"name": "seen", "type": "TIMESTAMP"},
        {"name": "active", "type": "BOOLEAN"},
    ]
    amount = column(ds, "amount")
    assert (amount["null_count"], amount["min"], amount["max"], amount["mean"]) == (
        1,
        7.25,
        12.5,
        9.875,
    )
    assert column(ds, "seen")["min"] == "2024-01-01T10:00:00"
    assert column(ds, "seen")["max"] == "2024-06-30T23:59:59"
    assert column(ds, "city")["top_values"] == [
        {"value": "Paris", "count": 2},
        {"value": "Lyon", "count": 1},
    ]
    assert column(ds, "active")["top_values"] == [
        {"value": True, "count": 2},
        {"value": False, "count": 1},
    ]


def test_nan_infinity_and_big_integers_stay_json_safe() -> None:
    content = (
        "a,b,c\n9223372036854775807,170141183460469231731687303715884105727,1\n-5,1,nan\n1,2,inf\n"
    )
    result = run([{"name": "edge", "format": "csv", "content": content}], query="FROM edge")
    (ds,) = result["datasets"]
    a, b, c = ds["columns"]
    assert (a["type"], a["min"], a["max"]) == ("BIGINT", -5, 9223372036854775807)
    assert (b["type"], b["max"]) == ("HUGEINT", 170141183460469231731687303715884105727)
    # NaN is left out of the numbers; an infinite max or mean becomes null
    assert (c["min"], c["max"], c["mean"], c["std"]) == (1.0, None, None, None)
    assert result["query_result"]["rows"][1] == [-5, 1, None]
    assert result["query_result"]["rows"][2] == [1, 2, None]


def test_header_only_nested_json_and_odd_values() -> None:
    records = [
        {"id": 1, "v": 1, "o": {"x": 1}, "seen": "2024-01-01T10:00:00Z", "s": "a\u0000b"},
        {"id": 2, "v": "two", "o": None, "seen": None, "s": "x" * 300},
    ]
    items = [
        {"name": "h", "format": "csv", "content": "a,b\n"},
        {"name": "n", "format": "json", "content": json.dumps(records)},
    ]
    query = "SELECT o, seen, INTERVAL 90 MINUTE AS i, 'ab'::BLOB AS b, MAP {1: 2} AS m FROM n"
    result = run(items, query)
    h, n = result["datasets"]
    assert (h["row_count"], h["schema"][0]["type"]) == (0, "VARCHAR")
    assert h["columns"][0]["top_values"] == []
    assert [c["type"] for c in n["columns"]] == [
        "BIGINT",
        "JSON",  # 1 and "two": mixed JSON values stay JSON text
        "STRUCT(x BIGINT)",
        "TIMESTAMP WITH TIME ZONE",
        "VARCHAR",
    ]
    assert column(n, "v")["top_values"] == [
        {"value": '"two"', "count": 1},
        {"value": "1", "count": 1},
    ]
    assert column(n, "o")["kind"] == "other"
    assert column(n, "seen")["min"] == "2024-01-01T10:00:00+00:00"
    top = [t["value"] for t in column(n, "s")["top_values"]]
    assert top == ["a\ufffdb", "x" * 200 + "\u2026"]  # NUL replaced, long text cut
    assert result["query_result"]["rows"] == [
        [{"x": 1}, "2024-01-01T10:00:00+00:00", "P0DT5400S", "YWI=", {"1": 2}],
        [None, None, "P0DT5400S", "YWI=", {"1": 2}],
    ]


# --- the query ---------------------------------------------------------------------------------
def test_join_across_two_datasets(cities_parquet: str) -> None:
    query = """
        WITH spend AS (SELECT person_id, sum(total) AS spent, count(*) AS n
                       FROM orders GROUP BY person_id)
        SELECT p.id, p.name, s.spent, s.n, p.joined
        FROM people p JOIN spend s ON s.person_id = p.id
        ORDER BY p.id
    """
    items = [people(), orders(), {"name": "cities", "format": "parquet", "content": cities_parquet}]
    result = run(items, query)
    assert result["summary"] == {"total": 3, "succeeded": 3, "failed": 0}
    assert result["query_result"] == {
        "columns": ["id", "name", "spent", "n", "joined"],
        "types": ["BIGINT", "VARCHAR", "DOUBLE", "BIGINT", "DATE"],
        "rows": [[1, "Alice", 10.0, 2, "2024-01-15"], [3, None, 5.0, 1, "2023-12-01"]],
        "row_count": 2,
        "truncated": False,
        "error": None,
        "error_code": None,
    }


def test_query_rows_are_capped() -> None:
    qr = run([people()], "SELECT range AS i FROM range(5000)")["query_result"]
    assert (qr["row_count"], qr["truncated"], qr["rows"][-1]) == (1000, True, [999])
    qr = run([people()], "SELECT range AS i FROM range(1000)")["query_result"]
    assert (qr["row_count"], qr["truncated"]) == (1000, False)
    qr = run([people()], "SELECT repeat('x', 100000) AS s FROM range(50)")["query_result"]
    assert qr["truncated"] is True and 5 <= qr["row_count"] <= 11


def test_query_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine, "QUERY_TIMEOUT_SECONDS", 0.3)
    qr = run([people()], "SELECT count(*) FROM range(100000000000)")["query_result"]
    assert qr["error_code"] == "timeout"
    assert "longer than 0.3 s" in qr["error"]


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("COPY people TO '{target}'", "COPY statement"),
        ("COPY (SELECT 1) TO '{target}' (FORMAT parquet)", "COPY statement"),
        ("EXPORT DATABASE '{target}'", "EXPORT statement"),
        ("SELECT * FROM read_csv('/etc/passwd')", "file system operations are disabled"),
        ("SELECT * FROM read_text('/etc/hostname')", "file system operations are disabled"),
        ("SELECT * FROM glob('/*')", "file system operations are disabled"),
        ("SELECT * FROM 'https://example.com/x.csv'", "disabled"),
        ("ATTACH '{target}' AS x", "ATTACH statement"),
        ("INSTALL httpfs", "LOAD statement"),
        ("LOAD httpfs", "LOAD statement"),
        ("CREATE TABLE t AS SELECT 1", "CREATE statement"),
        ("SELECT 1; DROP TABLE people", "the query has 2"),
        ("SET enable_external_access = true", "SET statement"),
        ("PRAGMA version", "PRAGMA statement"),
        ("DELETE FROM people", "DELETE statement"),
        ("WITH x AS (DELETE FROM people RETURNING id) SELECT * FROM x", "read-only"),
    ],
)
def test_query_sandbox_refuses(tmp_path: Path, query: str, needle: str) -> None:
    target = tmp_path / "x"
    result = run([people()], query.format(target=target))
    qr = result["query_result"]
    assert qr["error_code"] == "forbidden", qr
    assert needle in qr["error"], qr["error"]
    assert (qr["rows"], qr["row_count"]) == ([], 0)
    assert list(tmp_path.iterdir()) == []  # nothing written anywhere we can see
    assert result["datasets"][0]["status"] == "ok"  # the statistics are still delivered


def test_copy_to_tmp_x_leaves_the_file_system_alone() -> None:
    before = os.path.exists("/tmp/x")
    qr = run([people()], "COPY people TO '/tmp/x'")["query_result"]
    assert qr["error_code"] == "forbidden"
    assert qr["error"].startswith("only a read-only SELECT")
    assert os.path.exists("/tmp/x") == before


def test_query_errors_are_reported_not_raised() -> None:
    qr = run([people()], "SELECT nope FROM people")["query_result"]
    assert qr["error_code"] == "error"
    assert 'Referenced column "nope" not found' in qr["error"]
    qr = run([people()], "SELEC 1")["query_result"]
    assert qr["error_code"] == "syntax"
    assert "does not parse" in qr["error"]
    qr = run([people()], "-- nothing but a comment")["query_result"]
    assert (qr["error_code"], qr["error"]) == (
        "forbidden",
        "exactly one SQL statement is allowed; the query has 0",
    )


# --- bad data ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("fmt", "content", "needle"),
    [
        ("csv", "a,b\n1,2\n3,4,5\n", "same number of comma-separated fields"),
        ("csv", 'a,b\n1,"x\n', "malformed CSV"),
        ("csv", "a,b\n" + "1,2\n" * 3000 + "3,4,5\n", "Expected Number of Columns: 2 Found: 3"),
        ("csv", "  \n", "the content is empty"),
        ("json", '[{"a": 1},', "malformed JSON"),
        ("json", '{"a": 1}', "expected an array of objects, got an object"),
        ("json", "[1, 2]", "element 0 is a number"),
        ("json", "[]", "the array is empty"),
        ("json", '[{"a": NaN}]', "NaN is not valid JSON"),
    ],
)
def test_malformed_dataset_is_a_per_dataset_error(fmt: str, content: str, needle: str) -> None:
    bad = {"name": "bad", "format": fmt, "content": content}
    progress: list[dict[str, Any]] = []
    result = run([people(), bad], "SELECT count(*) AS n FROM people", progress=progress)
    ok, failed = result["datasets"]
    assert ok["status"] == "ok"
    assert failed["status"] == "error" and failed["name"] == "bad"
    assert needle in failed["error"], failed["error"]
    assert "innosystem-data-proc" not in failed["error"]  # no temp paths leak
    assert result["summary"] == {"total": 2, "succeeded": 1, "failed": 1}
    assert result["query_result"]["rows"] == [[5]]
    assert progress[-1] == {"total": 2, "succeeded": 1, "failed": 1}


def test_corrupt_parquet_is_a_per_dataset_error() -> None:
    fake = base64.b64encode(b"PAR1" + b"\x00garbage\x01" * 10 + b"PAR1").decode()
    result = run([people(), {"name": "pq", "format": "parquet", "content": fake}])
    assert result["datasets"][1]["status"] == "error"
    assert result["datasets"][1]["error"].startswith("malformed Parquet:")


def test_a_failed_dataset_is_not_queryable() -> None:
    bad = {"name": "bad", "format": "csv", "content": "a,b\n1,2\n3,4,5\n"}
    qr = run([people(), bad], "SELECT * FROM bad")["query_result"]
    assert qr["error_code"] == "error"
    assert "Table with name bad does not exist" in qr["error"]


def test_every_dataset_bad_is_permanent() -> None:
    items = [
        {"name": "one", "format": "csv", "content": "a,b\n1,2\n3,4,5\n"},
        {"name": "two", "format": "json", "content": "[1]"},
    ]
    data = PROC.validate_input({"items": items, "query": "SELECT 1"})
    with pytest.raises(PermanentError, match=r"all 2 dataset\(s\) failed: one: malformed CSV"):
        PROC.process(make_ctx(), data)


# --- validate_input ----------------------------------------------------------------------------
def refused(data: Any) -> list[dict[str, str]]:
    with pytest.raises(ValidationFailed) as info:
        PROC.validate_input(data)
    details = info.value.details
    assert details and all(d["field"].startswith("input_data") for d in details), details
    return details


def test_validate_input_refusals(cities_parquet: str) -> None:
    d = refused({"items": [{"name": "x", "format": "xlsx", "content": "a"}]})
    assert d[0]["field"] == "input_data.items.0.format"
    d = refused({"items": [{"name": "a b;", "format": "csv", "content": "a\n1\n"}]})
    assert d[0]["field"] == "input_data.items.0.name"
    assert "must be an identifier" in d[0]["message"]
    assert refused({"items": [{"name": "1st", "format": "csv", "content": "a"}]})
    d = refused({"items": [people(), {**people(), "name": "PEOPLE"}]})
    assert d[0]["field"] == "input_data.items" and "used twice" in d[0]["message"]
    d = refused({"items": [{**people(), "content": "x" * (MAX_DATASET_BYTES + 1)}]})
    assert d[0]["field"] == "input_data.items.0.content" and "larger than" in d[0]["message"]
    four_mib = "x" * (4 * 1024 * 1024)
    d = refused(
        {"items": [{"name": f"t{i}", "format": "csv", "content": four_mib} for i in range(6)]}
    )
    assert d[0]["field"] == "input_data.items" and "add up to" in d[0]["message"]
    d = refused({"items": [{"name": "p", "format": "parquet", "content": "not base64!"}]})
    assert (d[0]["field"], d[0]["message"]) == (
        "input_data.items.0.content",
        "Value error, is not valid base64",
    )
    d = refused({"items": [{"name": "p", "format": "parquet", "content": "aGVsbG8gd29ybGQh"}]})
    assert "not a Parquet file" in d[0]["message"]
    d = refused({"items": [{**people(), "artifact_id": "abc"}]})
    assert d[0]["field"] == "input_data.items.0.artifact_id"
    assert refused({"items": []})[0]["field"] == "input_data.items"
    assert refused({"items": [people()] * 21})[0]["field"] == "input_data.items"
    assert refused({"items": [people()], "query": "   "})[0]["field"] == "input_data.query"
    assert refused({"items": [people()], "extra": 1})[0]["field"] == "input_data.extra"
    # good input passes unchanged, base64 with line breaks included
    wrapped = "\n".join(cities_parquet[i : i + 76] for i in range(0, len(cities_parquet), 76))
    ok = {"items": [{"name": "c", "format": "parquet", "content": wrapped}], "query": "FROM c"}
    assert PROC.validate_input(ok) == ok


# --- how the platform runs it --------------------------------------------------------------------
def test_run_in_child_like_the_process_pool() -> None:
    from innosystem.services.jobs import run_in_child

    data = PROC.validate_input(
        {"items": [people(), orders()], "query": "SELECT count(*) FROM orders"}
    )
    ids = (str(uuid4()), 1, str(uuid4()), str(uuid4()), "t")
    result = run_in_child("data-proc-v1", data, ids)
    assert result["summary"] == {"total": 2, "succeeded": 2, "failed": 0}
    assert result["query_result"]["rows"] == [[4]]


def test_importing_the_plugin_does_not_import_duckdb() -> None:
    code = "import sys, innosystem_data_processing; print('duckdb' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- datasets from uploads (artifact_id) ----------------------------------------------------------
@pytest.fixture
def uploads(tmp_path: Path) -> tuple[LocalArtifactStore, JobArtifacts]:
    """A real local artifact store and the ``ctx.artifacts`` of one customer over it."""
    store = LocalArtifactStore(tmp_path / "artifacts")
    artifacts = JobArtifacts(
        store=store, job_id=uuid4(), attempt=1, customer_id=uuid4(), max_bytes=50 * 1024 * 1024
    )
    return store, artifacts


def upload(store: LocalArtifactStore, customer_id: UUID, data: bytes) -> str:
    artifact_id = uuid4()
    store.put(upload_key(customer_id, artifact_id), data)
    return str(artifact_id)


def test_datasets_from_uploads_mixed_with_inline(
    uploads: tuple[LocalArtifactStore, JobArtifacts], cities_parquet: str
) -> None:
    store, artifacts = uploads
    cid = artifacts.customer_id
    people_id = upload(store, cid, PEOPLE_CSV.encode())
    cities_id = upload(store, cid, base64.b64decode(cities_parquet))  # raw bytes, not base64
    items = [
        {"name": "people", "format": "csv", "artifact_id": people_id},
        orders(),
        {"name": "cities", "format": "parquet", "artifact_id": cities_id},
    ]
    query = """
        SELECT p.name, sum(o.total) AS spent, (SELECT count(*) FROM cities) AS n_cities
        FROM people p JOIN orders o ON o.person_id = p.id
        GROUP BY ALL ORDER BY spent DESC
    """
    result = run(items, query, artifacts=artifacts)
    assert result["summary"] == {"total": 3, "succeeded": 3, "failed": 0}
    by_upload, inline = run([people()], artifacts=artifacts)["datasets"][0], result["datasets"][0]
    assert inline == by_upload  # same statistics whichever way the bytes came
    assert (inline["row_count"], inline["column_count"]) == (5, 6)
    cities = result["datasets"][2]
    assert (cities["status"], cities["row_count"]) == ("ok", 3)
    assert column(cities, "amount")["mean"] == 9.875
    assert result["query_result"]["columns"] == ["name", "spent", "n_cities"]
    assert result["query_result"]["rows"] == [["Alice", 10.0, 3], [None, 5.0, 3]]


def test_unreadable_uploads_are_per_dataset_errors(
    uploads: tuple[LocalArtifactStore, JobArtifacts],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store, artifacts = uploads
    cid = artifacts.customer_id
    unknown = str(uuid4())
    foreign = upload(store, uuid4(), PEOPLE_CSV.encode())  # another customer's upload
    latin1 = upload(store, cid, "a,b\nCaf\xe9,1\n".encode("latin-1"))
    not_parquet = upload(store, cid, b"id,name\n1,x\n")
    corrupt = upload(store, cid, b"PAR1" + b"\x00garbage\x01" * 4 + b"PAR1")
    big = upload(store, cid, b"a\n" + b"1\n" * 40)
    monkeypatch.setattr(innosystem_data_processing, "MAX_DATASET_BYTES", 64)
    items = [
        {"name": "ok", "format": "json", "content": '[{"a": 1}, {"a": 2}]'},
        {"name": "unknown", "format": "csv", "artifact_id": unknown},
        {"name": "foreign", "format": "csv", "artifact_id": foreign},
        {"name": "latin1", "format": "csv", "artifact_id": latin1},
        {"name": "notpq", "format": "parquet", "artifact_id": not_parquet},
        {"name": "corrupt", "format": "parquet", "artifact_id": corrupt},
        {"name": "big", "format": "csv", "artifact_id": big},
    ]
    progress: list[dict[str, Any]] = []
    result = run(items, "SELECT count(*) FROM ok", progress=progress, artifacts=artifacts)
    errors = {d["name"]: d.get("error") for d in result["datasets"]}
    assert [d["status"] for d in result["datasets"]] == ["ok"] + ["error"] * 6
    assert errors["unknown"] == f"upload {unknown} not found for this customer"
    assert errors["foreign"] == f"upload {foreign} not found for this customer"
    assert "is not UTF-8 text" in errors["latin1"]
    assert "is not a Parquet file" in errors["notpq"]
    assert errors["corrupt"].startswith("malformed Parquet:")
    assert errors["big"] == f"upload {big} is 82 bytes; the limit per dataset is 64 bytes"
    assert all("artifacts" not in e for e in errors.values() if e)  # no store paths leak
    assert result["summary"] == {"total": 7, "succeeded": 1, "failed": 6}
    assert result["query_result"]["rows"] == [[2]]
    assert progress[-1] == {"total": 7, "succeeded": 1, "failed": 6}


def test_every_upload_missing_is_permanent(
    uploads: tuple[LocalArtifactStore, JobArtifacts],
) -> None:
    _, artifacts = uploads
    missing = str(uuid4())
    data = PROC.validate_input(
        {"items": [{"name": "one", "format": "csv", "artifact_id": missing}]}
    )
    with pytest.raises(PermanentError, match=rf"all 1 dataset\(s\) failed: one: upload {missing}"):
        PROC.process(make_ctx(artifacts=artifacts), data)
    # and without an artifact store at all
    with pytest.raises(PermanentError, match="no artifact store"):
        PROC.process(make_ctx(), data)


def test_validate_input_artifact_id() -> None:
    aid = str(uuid4())
    ok = {"items": [{"name": "t", "format": "parquet", "artifact_id": aid}], "query": "FROM t"}
    assert PROC.validate_input(ok) == ok  # stored as given: no "content": null
    # both sources, or neither
    for item in (
        {**people(), "artifact_id": aid},
        {"name": "t", "format": "csv"},
        {"name": "t", "format": "csv", "content": None, "artifact_id": None},
    ):
        d = refused({"items": [people(), item]})
        assert d[0]["field"].startswith("input_data.items.1"), d
        assert "exactly one of content and artifact_id" in d[0]["message"]
    # not a UUID string
    for bad in ("abc", 123, "", ["x"]):
        d = refused({"items": [{"name": "t", "format": "csv", "artifact_id": bad}]})
        assert d[0]["field"] == "input_data.items.0.artifact_id", d
    # the total limit counts inline content only; uploads are bounded one by one when read
    four_mib = "x" * (4 * 1024 * 1024)
    items = [{"name": f"t{i}", "format": "csv", "content": four_mib} for i in range(4)]
    items += [{"name": f"u{i}", "format": "csv", "artifact_id": str(uuid4())} for i in range(16)]
    assert len(PROC.validate_input({"items": items})["items"]) == 20


# --- through the real app (innosystem.testing fixtures) ----------------------------------------
@pytest.mark.asyncio
async def test_uploaded_csv_through_the_app(
    innosystem_client: Any, innosystem_tenant: dict[str, str], innosystem_run_job: Any
) -> None:
    response = await innosystem_client.post(
        "/artifacts",
        query_string={"customer_id": innosystem_tenant["customer_id"], "name": "people.csv"},
        data=PEOPLE_CSV.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, await response.get_data()
    uploaded = await response.get_json()

    job = await innosystem_run_job(
        "data-proc-v1",
        {
            "items": [
                {"name": "people", "format": "csv", "artifact_id": uploaded["id"]},
                orders(),
            ],
            "query": "SELECT count(*) AS n FROM people JOIN orders ON orders.person_id = people.id",
        },
    )
    assert job["status"] == "succeeded", job
    result = job["result"]
    assert result["summary"] == {"total": 2, "succeeded": 2, "failed": 0}
    assert result["datasets"][0]["row_count"] == 5
    assert result["query_result"]["rows"] == [[3]]


@pytest.mark.asyncio
async def test_missing_upload_through_the_app(
    innosystem_client: Any,
    innosystem_tenant: dict[str, str],
    innosystem_run_job: Any,
    innosystem_create_job_type: Any,
) -> None:
    missing = str(uuid4())
    job = await innosystem_run_job(
        "data-proc-v1",
        {"items": [people(), {"name": "gone", "format": "csv", "artifact_id": missing}]},
    )
    assert job["status"] == "succeeded", job
    gone = job["result"]["datasets"][1]
    assert (gone["status"], gone["error"]) == (
        "error",
        f"upload {missing} not found for this customer",
    )
    # both sources in one dataset: refused at submit
    job_type = await innosystem_create_job_type("data-proc-v1")
    response = await innosystem_client.post(
        "/jobs",
        json={
            "customer_id": innosystem_tenant["customer_id"],
            "job_type_id": job_type["id"],
            "input_data": {"items": [{**people(), "artifact_id": missing}]},
        },
    )
    assert response.status_code == 422
    body = await response.get_json()
    assert "input_data.items.0" in json.dumps(body), body
