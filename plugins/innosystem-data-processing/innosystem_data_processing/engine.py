"""The worker side of ``data-proc-v1``: load each dataset into DuckDB, describe it, then run the
optional query in a sandbox.

Imported only inside ``DataProcessing.process`` (in the CPU process pool), and DuckDB itself only
inside the functions that use it, so importing the plugin stays cheap for the API process.

The sandbox, in order:

1. Every dataset is written to a private temporary directory and loaded into a DuckDB database
   file there by *our* SQL only (``read_csv``/``read_json``/``read_parquet`` on paths we made).
   The raw files are removed right after loading. Statistics are computed on that connection,
   which is then closed.
2. The user's query is parsed with DuckDB's own parser (``duckdb.extract_statements``): exactly
   one statement of type SELECT (which covers ``WITH ... SELECT``, ``VALUES``, ``FROM t``) is
   accepted; anything else (COPY, ATTACH, INSTALL, LOAD, CREATE, PRAGMA, SET, several
   statements, ...) is refused before any connection sees it.
3. The database is reopened **read-only** (so not even a data-modifying ``WITH`` can write),
   extension auto-install/auto-load off, no temporary spill directory, one thread, a memory
   limit; then ``SET enable_external_access = false`` (no file, network or extension access)
   and ``SET lock_configuration = true`` so the query cannot change any of it back.
4. The query runs under a timeout (``connection.interrupt()``) and its rows are fetched in small
   batches up to a row cap and a byte cap.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import math
import os
import tempfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from innosystem import JobContext, PermanentError

from innosystem_data_processing import DataProcInput, Dataset, DatasetUnreadable, dataset_bytes

#: The query result holds at most this many rows (``truncated`` tells if there were more).
QUERY_ROW_LIMIT = 1_000
#: ... and at most about this many bytes of JSON in ``rows``.
QUERY_RESULT_MAX_BYTES = 1024 * 1024
QUERY_TIMEOUT_SECONDS = 10.0
#: Loading plus statistics of one dataset.
DATASET_TIMEOUT_SECONDS = 30.0
MAX_COLUMNS = 1_000
TOP_VALUES = 5
#: Text in ``top_values`` longer than this is cut (and ends with "…").
TOP_VALUE_MAX_CHARS = 200
MEMORY_LIMIT = "1GB"
THREADS = 1
ERROR_MAX_CHARS = 1_000
_FETCH_BATCH = 50
_MAX_VALUE_DEPTH = 32

_INTEGER = {
    "tinyint",
    "smallint",
    "integer",
    "bigint",
    "hugeint",
    "utinyint",
    "usmallint",
    "uinteger",
    "ubigint",
    "uhugeint",
}
_FLOAT = {"float", "double"}
#: avg() of these is summed exactly (in a HUGEINT) without overflow; others average as DOUBLE.
_EXACT_AVG = (_INTEGER - {"hugeint", "uhugeint"}) | _FLOAT
_TEMPORAL = {
    "date",
    "time",
    "time_ns",
    "time with time zone",
    "timestamp",
    "timestamp_s",
    "timestamp_ms",
    "timestamp_ns",
    "timestamp with time zone",
}
_TEXT = {"varchar", "enum", "uuid"}  # JSON columns have id "varchar" too

#: Settings of every connection; the query connection adds the sandbox on top.
_BASE_CONFIG: dict[str, Any] = {
    "threads": THREADS,
    "memory_limit": MEMORY_LIMIT,
    "temp_directory": "",  # never spill to disk (the default would be a directory in the cwd)
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
    "allow_community_extensions": False,
    "allow_unsigned_extensions": False,
}


class DatasetError(Exception):
    """A dataset that cannot be loaded or described; reported in its own entry."""


# --- entry point ------------------------------------------------------------------------------
def run(ctx: JobContext, spec: DataProcInput) -> dict[str, Any]:
    import duckdb

    total = len(spec.items)
    succeeded = failed = 0
    datasets: list[dict[str, Any]] = []
    ctx.report_progress(total=total, succeeded=0, failed=0)
    with tempfile.TemporaryDirectory(prefix="innosystem-data-proc-") as tmp:
        db_path = os.path.join(tmp, "data.duckdb")
        con = duckdb.connect(db_path, config=dict(_BASE_CONFIG))
        try:
            con.execute("SET TimeZone = 'UTC'")
            for index, dataset in enumerate(spec.items):
                ctx.raise_if_cancelled()
                entry = _process_dataset(con, tmp, index, dataset, ctx.artifacts)
                datasets.append(entry)
                if entry["status"] == "ok":
                    succeeded += 1
                else:
                    failed += 1
                    ctx.logger.info("dataset {!r} failed: {}", dataset.name, entry["error"])
                ctx.report_progress(total=total, succeeded=succeeded, failed=failed)
        finally:
            con.close()
        if succeeded == 0:
            reasons = "; ".join(f"{d['name']}: {d['error']}" for d in datasets)
            raise PermanentError(_cut(f"all {total} dataset(s) failed: {reasons}"))
        query_result = None
        if spec.query is not None:
            ctx.raise_if_cancelled()
            query_result = run_query(db_path, spec.query)
            if query_result["error"]:
                ctx.logger.info("query refused or failed: {}", query_result["error"])
    return {
        "datasets": datasets,
        "query_result": query_result,
        "summary": {"total": total, "succeeded": succeeded, "failed": failed},
    }


# --- datasets ---------------------------------------------------------------------------------
def _process_dataset(
    con: Any, tmp: str, index: int, dataset: Dataset, artifacts: Any = None
) -> dict[str, Any]:
    import duckdb

    path = os.path.join(tmp, f"{index}.{dataset.format}")
    try:
        with _deadline(con, DATASET_TIMEOUT_SECONDS) as fired:
            try:
                _load(con, path, dataset, artifacts)
                stats = _describe(con, dataset.name)
            except duckdb.Error as exc:
                if fired.is_set():
                    raise DatasetError(
                        f"loading and describing took longer than {DATASET_TIMEOUT_SECONDS:g} s"
                    ) from None
                raise DatasetError(
                    _duckdb_message(exc, {path: dataset.name, tmp: "<tmp>"})
                ) from None
    except Exception as exc:  # one bad dataset must not take the job down
        _drop(con, dataset.name)  # a failed dataset is not available to the query
        message = str(exc) if isinstance(exc, DatasetError) else f"{type(exc).__name__}: {exc}"
        return {
            "name": dataset.name,
            "format": dataset.format,
            "status": "error",
            "error": _cut(message),
        }
    finally:
        if os.path.exists(path):
            os.remove(path)
    return {"name": dataset.name, "format": dataset.format, "status": "ok", **stats}


def _load(con: Any, path: str, dataset: Dataset, artifacts: Any = None) -> None:
    import duckdb

    try:
        raw = dataset_bytes(dataset, artifacts)
    except DatasetUnreadable as exc:
        raise DatasetError(str(exc)) from None
    if dataset.format == "csv":
        if not raw.strip():
            raise DatasetError("malformed CSV: the content is empty (a header line is required)")
        reader = (
            f"read_csv({_literal(path)}, header = true, delim = ',', quote = '\"', "
            "escape = '\"', comment = '', skip = 0, sample_size = -1, strict_mode = true, "
            "null_padding = false, encoding = 'utf-8')"
        )
    elif dataset.format == "json":
        _check_json(raw)
        reader = (
            f"read_json({_literal(path)}, format = 'array', records = true, sample_size = -1, "
            f"maximum_object_size = {len(raw) + 1024})"
        )
    else:
        reader = f"read_parquet({_literal(path)})"
    with open(path, "wb") as fh:
        fh.write(raw)
    try:
        con.execute(f"CREATE TABLE {_ident(dataset.name)} AS SELECT * FROM {reader}")
    except duckdb.InterruptException:
        raise  # the deadline fired; the caller words it
    except duckdb.Error as exc:
        kind = {"csv": "CSV", "json": "JSON", "parquet": "Parquet"}[dataset.format]
        message = _duckdb_message(exc, {path: dataset.name})
        raise DatasetError(f"malformed {kind}: {message}") from None
    finally:
        os.remove(path)


def _check_json(raw: bytes) -> None:
    """DuckDB's reader forgives a truncated array; insist on one complete array of objects."""

    def no_constant(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON")

    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=no_constant)
    except (ValueError, RecursionError) as exc:
        raise DatasetError(f"malformed JSON: {exc}") from None
    if not isinstance(data, list):
        raise DatasetError(f"malformed JSON: expected an array of objects, got {_json_kind(data)}")
    if not data:
        raise DatasetError("malformed JSON: the array is empty (no columns to infer)")
    for i, record in enumerate(data):
        if not isinstance(record, dict):
            raise DatasetError(
                f"malformed JSON: element {i} is {_json_kind(record)}, not an object"
            )
    if not any(data):
        raise DatasetError("malformed JSON: every object is empty (no columns to infer)")


def _json_kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, int | float) else "null"
    )


def _describe(con: Any, table: str) -> dict[str, Any]:
    rel = con.sql(f"SELECT * FROM {_ident(table)}")
    names = list(rel.columns)
    types = list(rel.types)
    if len(names) > MAX_COLUMNS:
        raise DatasetError(f"has {len(names)} columns; the limit is {MAX_COLUMNS}")
    cols = [(name, str(t), _kind(t.id), t.id) for name, t in zip(names, types, strict=True)]

    exprs = ["count(*)"]
    for name, _type, kind, type_id in cols:
        c = _ident(name)
        exprs += [f"count({c})", f"count(DISTINCT {_as_text(c) if kind == 'other' else c})"]
        if kind == "numeric":
            keep = f" FILTER (WHERE NOT isnan({c}))" if type_id in _FLOAT else ""
            exprs += [
                f"min({c}){keep}",
                f"max({c}){keep}",
                f"avg({c if type_id in _EXACT_AVG else f'CAST({c} AS DOUBLE)'}){keep}",
                f"stddev_samp(CAST({c} AS DOUBLE)){keep}",
            ]
        elif kind == "temporal":
            exprs += [f"min({c})", f"max({c})"]
    values = iter(con.execute(f"SELECT {', '.join(exprs)} FROM {_ident(table)}").fetchone())

    row_count = next(values)
    columns: list[dict[str, Any]] = []
    for name, type_name, kind, _type_id in cols:
        non_null = next(values)
        col: dict[str, Any] = {
            "name": _text(name),
            "type": type_name,
            "kind": kind,
            "null_count": row_count - non_null,
            "distinct_count": next(values),
        }
        if kind == "numeric":
            col["min"] = _json_value(next(values))
            col["max"] = _json_value(next(values))
            col["mean"] = _float(next(values))
            col["std"] = _float(next(values))
        elif kind == "temporal":
            col["min"] = _json_value(next(values))
            col["max"] = _json_value(next(values))
        else:
            col["top_values"] = _top_values(con, table, name, kind)
        columns.append(col)
    return {
        "row_count": row_count,
        "column_count": len(columns),
        "schema": [{"name": c["name"], "type": c["type"]} for c in columns],
        "columns": columns,
    }


def _top_values(con: Any, table: str, column: str, kind: str) -> list[dict[str, Any]]:
    c = _ident(column)
    value = _as_text(c) if kind == "other" else c
    rows = con.execute(
        f"SELECT {value} AS v, count(*) AS n FROM {_ident(table)} WHERE {c} IS NOT NULL "
        f"GROUP BY ALL ORDER BY n DESC, v LIMIT {TOP_VALUES}"
    ).fetchall()
    out = []
    for v, n in rows:
        v = _json_value(v)
        if isinstance(v, str) and len(v) > TOP_VALUE_MAX_CHARS:
            v = v[:TOP_VALUE_MAX_CHARS] + "…"
        out.append({"value": v, "count": n})
    return out


def _kind(type_id: str) -> str:
    if type_id in _INTEGER or type_id in _FLOAT or type_id == "decimal":
        return "numeric"
    if type_id in _TEMPORAL:
        return "temporal"
    if type_id in _TEXT:
        return "text"
    if type_id == "boolean":
        return "boolean"
    return "other"  # lists, structs, maps, blobs, intervals, ...: counted as their text form


def _drop(con: Any, table: str) -> None:
    try:
        con.execute(f"DROP TABLE IF EXISTS {_ident(table)}")
    except Exception:  # pragma: no cover - best effort, the database is temporary anyway
        pass


# --- the query ---------------------------------------------------------------------------------
def run_query(db_path: str, query: str) -> dict[str, Any]:
    """Run ``query`` read-only against the database at ``db_path``; never raises for a bad query."""
    import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        return _query_error("syntax", "the query does not parse: " + _duckdb_message(exc, {}))
    if len(statements) != 1:
        return _query_error(
            "forbidden",
            f"exactly one SQL statement is allowed; the query has {len(statements)}",
        )
    statement = statements[0]
    if statement.type != duckdb.StatementType.SELECT:
        return _query_error(
            "forbidden",
            "only a read-only SELECT (or WITH ... SELECT) query is allowed; "
            f"this is a {statement.type.name} statement",
        )

    con = _sandbox(db_path)
    try:
        with _deadline(con, QUERY_TIMEOUT_SECONDS) as fired:
            try:
                return _fetch(con.execute(statement.query))
            except duckdb.Error as exc:
                if fired.is_set():
                    return _query_error(
                        "timeout", f"the query ran longer than {QUERY_TIMEOUT_SECONDS:g} s"
                    )
                message = _duckdb_message(exc, {os.path.dirname(db_path): "<tmp>"})
                if isinstance(exc, duckdb.PermissionException):
                    return _query_error("forbidden", message)
                if "read-only mode" in message:
                    return _query_error("forbidden", f"the query is read-only: {message}")
                return _query_error("error", message)
    finally:
        con.close()


def _sandbox(db_path: str) -> Any:
    import duckdb

    # temp_directory cannot be set once external access is off, so: open, then shut the door.
    con = duckdb.connect(db_path, read_only=True, config=dict(_BASE_CONFIG))
    try:
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        external, locked = con.execute(
            "SELECT current_setting('enable_external_access'), "
            "current_setting('lock_configuration')"
        ).fetchone()
        if external is not False or locked is not True:  # pragma: no cover - defensive
            raise RuntimeError("could not lock the DuckDB sandbox")
    except BaseException:
        con.close()
        raise
    return con


def _fetch(cursor: Any) -> dict[str, Any]:
    columns = [_text(str(d[0])) for d in cursor.description]
    types = [str(d[1]) for d in cursor.description]
    rows: list[list[Any]] = []
    size = 0
    truncated = False
    while not truncated:
        batch = cursor.fetchmany(_FETCH_BATCH)
        if not batch:
            break
        for row in batch:
            if len(rows) >= QUERY_ROW_LIMIT:
                truncated = True
                break
            out = [_json_value(v) for v in row]
            size += len(json.dumps(out))
            if size > QUERY_RESULT_MAX_BYTES:
                truncated = True
                break
            rows.append(out)
    return {
        "columns": columns,
        "types": types,
        "rows": rows,
        "row_count": len(rows),
        "truncated": truncated,
        "error": None,
        "error_code": None,
    }


def _query_error(code: str, message: str) -> dict[str, Any]:
    return {
        "columns": [],
        "types": [],
        "rows": [],
        "row_count": 0,
        "truncated": False,
        "error": _cut(message),
        "error_code": code,
    }


# --- helpers ------------------------------------------------------------------------------------
@contextmanager
def _deadline(con: Any, seconds: float) -> Iterator[threading.Event]:
    """Interrupt whatever ``con`` runs once ``seconds`` have passed; the event tells it fired."""
    fired = threading.Event()
    lock = threading.Lock()
    active = [True]

    def fire() -> None:
        with lock:
            if active[0]:
                fired.set()
                con.interrupt()

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield fired
    finally:
        with lock:
            active[0] = False
        timer.cancel()


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _as_text(expr: str) -> str:
    return f"CAST({expr} AS VARCHAR)"


def _duckdb_message(exc: BaseException, replace: dict[str, str]) -> str:
    """DuckDB's message without its 'Possible fixes' list and option dump, paths replaced."""
    text = str(exc)
    if "not possible to automatically detect the CSV parsing dialect" in text:
        text = text.split("\n", 1)[0] + (
            "\nRows do not all have the same number of comma-separated fields as the header, "
            "or a quoted field is not closed"
        )
    for marker in ("\nPossible fixes", "\n\n"):
        head, _sep, _tail = text.partition(marker)
        text = head
    for old, new in sorted(replace.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(old, new)
    parts = [line.strip() for line in text.splitlines() if line.strip()]
    out = parts[0] if parts else type(exc).__name__
    for part in parts[1:]:
        out += (" " if out.endswith(".") else "; ") + part
    return out


def _cut(text: str) -> str:
    text = _text(text)
    return text if len(text) <= ERROR_MAX_CHARS else text[: ERROR_MAX_CHARS - 1] + "…"


def _text(value: str) -> str:
    """A string the database can store: no U+0000, no lone surrogate."""
    if "\x00" in value:
        value = value.replace("\x00", "\ufffd")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode("utf-8")
    return value


def _float(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _json_value(value: Any, depth: int = 0) -> Any:
    """A DuckDB value as storable JSON: NaN/inf → null, temporal → ISO 8601, bytes → base64."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, decimal.Decimal):
        if not value.is_finite():
            return None
        exponent = value.as_tuple().exponent
        return int(value) if isinstance(exponent, int) and exponent >= 0 else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return _duration(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if depth >= _MAX_VALUE_DEPTH:
        return _text(str(value))
    if isinstance(value, dict):
        return {
            _text(k if isinstance(k, str) else str(_json_value(k, depth + 1))): _json_value(
                v, depth + 1
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_json_value(v, depth + 1) for v in value]
    return _text(str(value))


def _duration(value: dt.timedelta) -> str:
    """ISO 8601 duration, e.g. ``P3DT3600S`` (DuckDB months arrive already as days)."""
    sign = "-" if value < dt.timedelta(0) else ""
    value = abs(value)
    seconds = str(value.seconds)
    if value.microseconds:
        seconds += f".{value.microseconds:06d}".rstrip("0")
    return f"{sign}P{value.days}DT{seconds}S"
