"""GET /openapi.json and GET /docs (docs/API.md): the machine-readable contract covers every
route the app serves, documents its errors, and the docs page loads nothing from the internet.
Then the contract is used against the server: every documented request body and query
parameter, sent wrong, gets a 4xx with the error envelope, never a 5xx."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from helpers import assert_envelope, create_job_type, create_tenant, later, submit

HTTP_METHODS = ("get", "put", "post", "delete", "patch")


@pytest.fixture(scope="module")
def spec(api: httpx.Client) -> dict[str, Any]:
    response = api.get("/openapi.json")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


@pytest.fixture(scope="module")
def app_routes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[str]]:
    """Path (OpenAPI spelling) → methods, from the URL map of an app built in-process (never
    started, so no database is opened)."""
    from innosystem.app import create_app
    from innosystem.config import load_settings

    tmp: Path = tmp_path_factory.mktemp("openapi-app")
    settings = load_settings(
        env={
            "INNOSYSTEM_DATABASE_URL": f"sqlite://{tmp / 'unused.sqlite3'}",
            "INNOSYSTEM_DATA_DIR": str(tmp),
        },
        cwd=tmp,
    )
    app = create_app(settings)
    routes: dict[str, set[str]] = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.endswith(".static"):
            continue
        path = re.sub(r"<(?:[^:<>]+:)?([^:<>]+)>", r"{\1}", rule.rule)
        methods = {m.lower() for m in rule.methods or ()} - {"head", "options"}
        routes.setdefault(path, set()).update(methods)
    assert "/jobs" in routes and "get" in routes["/jobs"], routes
    return routes


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any], list]]:
    """(path, method, operation, parameters incl. the path item's) for every operation."""
    for path, item in spec["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                params = [*item.get("parameters", []), *item[method].get("parameters", [])]
                yield path, method, item[method], params


def resolve(spec: dict[str, Any], node: Any) -> Any:
    """Follow ``$ref`` (local ones) until a node that is not a reference."""
    seen = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        assert ref not in seen, f"$ref cycle at {ref}"
        seen.add(ref)
        node = spec
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def error_schema_refs(spec: dict[str, Any]) -> set[str]:
    """The ``$ref`` of every component schema that is the error envelope
    ``{"error": {"code", "message", "details"}}`` (found by shape, not by name)."""
    refs = set()
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        schema = resolve(spec, schema)
        properties = schema.get("properties", {})
        if set(properties) != {"error"} or "error" not in schema.get("required", []):
            continue
        inner = resolve(spec, properties["error"])
        if {"code", "message", "details"} <= set(inner.get("properties", {})):
            refs.add(f"#/components/schemas/{name}")
    return refs


def refers_to(spec: dict[str, Any], node: Any, targets: set[str], seen: set[str] | None = None):
    """Whether ``node`` is, or reaches through refs and sub-schemas, one of ``targets``."""
    seen = set() if seen is None else seen
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in targets:
                return True
            if ref in seen:
                return False
            seen.add(ref)
            return refers_to(spec, resolve(spec, {"$ref": ref}), targets, seen)
        return any(refers_to(spec, value, targets, seen) for value in node.values())
    if isinstance(node, list):
        return any(refers_to(spec, value, targets, seen) for value in node)
    return False


# --- the document ---------------------------------------------------------------------------------
def test_openapi_is_3_1_with_paths(spec):
    assert isinstance(spec.get("openapi"), str) and spec["openapi"].startswith("3.1"), spec.get(
        "openapi"
    )
    assert spec["info"]["title"] and spec["info"]["version"]
    assert isinstance(spec["paths"], dict) and spec["paths"]


def test_every_route_of_the_app_is_documented_with_each_method(spec, app_routes):
    missing = []
    for path, methods in sorted(app_routes.items()):
        documented = spec["paths"].get(path, {})
        for method in sorted(methods):
            if method not in documented:
                missing.append(f"{method.upper()} {path}")
    assert missing == [], f"routes missing from /openapi.json: {missing}"


def test_every_documented_operation_exists_in_the_app(spec, app_routes):
    phantom = [
        f"{method.upper()} {path}"
        for path, method, _op, _params in operations(spec)
        if method not in app_routes.get(path, set())
    ]
    assert phantom == [], f"documented but not served: {phantom}"


def test_every_operation_with_input_documents_a_4xx_with_the_error_schema(spec):
    """Every operation that takes a body, a query or a path parameter can be sent bad input, so
    it documents a 4xx in the envelope. (GET /health, /queues, /processors, /openapi.json and
    /docs take none.)"""
    targets = error_schema_refs(spec)
    assert len(targets) == 1, f"one error envelope schema expected, found {sorted(targets)}"

    undocumented = []
    for path, method, op, _params in operations(spec):
        if not op.get("parameters") and "requestBody" not in op:
            continue
        responses = op.get("responses", {})
        client_errors = [
            resolve(spec, response)
            for code, response in responses.items()
            if re.fullmatch(r"4(\d\d|XX)", str(code))
        ]
        if not any(refers_to(spec, r.get("content", {}), targets) for r in client_errors):
            undocumented.append(f"{method.upper()} {path}")
    assert undocumented == [], f"no 4xx referencing {targets}: {undocumented}"


def test_docs_page_loads_nothing_from_the_internet(api, server):
    response = api.get("/docs")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert "openapi.json" in html

    own = urlsplit(server.url).netloc
    absolute = re.findall(r"""https?://[^\s"'<>()`\\]+""", html)
    # XML namespace names (http://www.w3.org/2000/svg) are identifiers, never fetched
    foreign = [u for u in absolute if urlsplit(u).netloc not in (own, "www.w3.org")]
    assert foreign == [], f"/docs references outside URLs: {foreign}"

    # every asset it names (src=, href=, CSS url()) is on this server, and served
    assets = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", html)
    assets += re.findall(r"""url\(\s*["']?([^"')]+)["']?\s*\)""", html)
    for asset in assets:
        if asset.startswith(("#", "data:", "javascript:", "mailto:")):
            continue
        target = urljoin(server.url + "/docs", asset)
        assert urlsplit(target).netloc == own, f"/docs loads {asset} from elsewhere"
        fetched = api.get(target)
        assert fetched.status_code == 200, (asset, fetched.status_code)


# --- the contract used against the server ---------------------------------------------------------
@pytest.fixture(scope="module")
def real_ids(api: httpx.Client) -> dict[str, str]:
    """Existing resources of every kind a path can name."""
    tenant = create_tenant(api, balance_cents=1_000)
    job_type = create_job_type(api, "test-noop", cost=1)
    job = submit(api, tenant.customer_id, job_type["id"], {}, run_at=later())
    upload = api.post(
        "/artifacts",
        params={"customer_id": tenant.customer_id, "name": "walk.txt"},
        content=b"hello",
        headers={"Content-Type": "text/plain"},
    )
    assert upload.status_code == 201, upload.text
    schedule = api.post(
        "/schedules",
        json={
            "customer_id": tenant.customer_id,
            "job_type_id": job_type["id"],
            "input_data": {},
            "cron": "0 0 1 1 *",
        },
    )
    assert schedule.status_code == 201, schedule.text
    return {
        "reseller": tenant.reseller_id,
        "customer": tenant.customer_id,
        "project": tenant.project_id,
        "job_type": job_type["id"],
        "job": job["id"],
        "artifact": upload.json()["id"],
        "schedule": schedule.json()["id"],
    }


SEGMENT_KIND = {
    "resellers": "reseller",
    "customers": "customer",
    "projects": "project",
    "job-types": "job_type",
    "jobs": "job",
    "artifacts": "artifact",
    "runners": "runner",
    "schedules": "schedule",
}


def fill(path: str, real: dict[str, str] | None) -> str:
    """``path`` with each ``{param}`` replaced: by a random UUID (``real`` None), or by the id
    of an existing resource of the kind it names (``{customer_id}``, or ``{id}`` after
    ``/customers``)."""
    segments = path.strip("/").split("/")
    out = []
    for i, segment in enumerate(segments):
        match = re.fullmatch(r"\{(\w+)\}", segment)
        if not match:
            out.append(segment)
            continue
        name = match.group(1)
        if name == "name":  # a file name, not an id
            out.append("walk.txt")
            continue
        if real is None:
            out.append(str(uuid.uuid4()))
            continue
        kind = name.removesuffix("_id") if name != "id" else SEGMENT_KIND.get(segments[i - 1])
        assert kind in real, f"no real id for {{{name}}} in {path}"
        out.append(real[kind])
    return "/" + "/".join(out)


BAD_BODIES = {
    "malformed": {"content": b'{"name": "x", ', "headers": {"Content-Type": "application/json"}},
    "array": {"json": [{"name": "x"}]},
    "unknown_field_only": {"json": {"no_such_field_zz": 1}},
}


def test_every_request_body_sent_wrong_is_a_4xx_envelope(api, spec, real_ids):
    checked = []
    failures = []
    for path, method, op, _params in operations(spec):
        if "requestBody" not in op:
            continue
        for fill_kind in ("random", "real"):
            url = fill(path, None if fill_kind == "random" else real_ids)
            for label, kwargs in BAD_BODIES.items():
                response = api.request(method.upper(), url, **kwargs)
                checked.append((method, path))
                try:
                    assert_envelope(response)
                except AssertionError as exc:
                    failures.append(
                        f"{method.upper()} {url} [{fill_kind} ids, {label}]: "
                        f"{response.status_code} {response.text[:200]} ({exc})"
                    )
    documented = set(checked)
    for expected in [
        ("post", "/jobs"),
        ("post", "/resellers"),
        ("post", "/customers"),
        ("post", "/projects"),
        ("post", "/job-types"),
        ("patch", "/resellers/{reseller_id}"),
        ("patch", "/customers/{customer_id}"),
        ("patch", "/projects/{project_id}"),
        ("patch", "/job-types/{job_type_id}"),
        ("post", "/customers/{customer_id}/wallet/top-ups"),
    ]:
        assert expected in documented, f"{expected} has no documented requestBody"
    assert failures == [], "\n".join(failures)

    # none of that created or changed anything of the real tenant
    wallet = api.get(f"/customers/{real_ids['customer']}/wallet").json()
    assert (wallet["balance_cents"], wallet["held_cents"]) == (1_000, 1)
    assert api.get(f"/jobs/{real_ids['job']}").json()["status"] == "pending"


def bad_values(spec: dict[str, Any], param: dict[str, Any]) -> list[str]:
    """Values no valid request carries for this query parameter, from its schema and from what
    docs/API.md says of its name; empty when any string is valid (a free-text name filter)."""
    schema = resolve(spec, param.get("schema", {}))
    variants = [resolve(spec, s) for s in schema.get("anyOf", schema.get("oneOf", []))]
    variants = [s for s in variants if s.get("type") != "null"] or [schema]
    schema = variants[0]
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    name = param["name"]
    values: list[str] = []
    if schema.get("format") == "uuid" or (name.endswith("_id") and "logic" not in name):
        values.append("not-a-uuid")
    if "enum" in schema or name in ("status", "kind", "group_by", "processor_type"):
        values.append("not-one-of-the-choices")
    if schema.get("format") in ("date-time", "date") or name in (
        "from",
        "to",
        "created_from",
        "created_to",
    ):
        values.append("not-a-date")
    if kind == "integer" or name == "limit":
        values.append("not-a-number")
        values += [str(schema.get("minimum", 1) - 1), "-1"] if name == "limit" else []
        if "minimum" in schema and name != "limit":
            values.append(str(schema["minimum"] - 1))
        if "maximum" in schema:
            values.append(str(schema["maximum"] + 1))
    if kind == "number":
        values.append("not-a-number")
    if kind == "boolean" or name == "enabled":
        values.append("maybe")
    if name == "cursor":
        values.append("not-a-cursor")
    return list(dict.fromkeys(v for v in values if v))


def test_every_query_parameter_sent_wrong_is_a_4xx_envelope(api, spec, real_ids):
    checked: set[tuple[str, str, str]] = set()
    failures = []
    for path, method, _op, params in operations(spec):
        for param in (resolve(spec, p) for p in params):
            if param.get("in") != "query":
                continue
            for value in bad_values(spec, param):
                url = fill(path, real_ids)
                response = api.request(method.upper(), url, params={param["name"]: value})
                checked.add((method, path, param["name"]))
                try:
                    assert_envelope(response)
                except AssertionError as exc:
                    failures.append(
                        f"{method.upper()} {url}?{param['name']}={value}: "
                        f"{response.status_code} {response.text[:200]} ({exc})"
                    )
    for expected in [
        ("get", "/jobs", "status"),
        ("get", "/jobs", "customer_id"),
        ("get", "/jobs", "project_id"),
        ("get", "/jobs", "job_type_id"),
        ("get", "/jobs", "created_from"),
        ("get", "/jobs", "created_to"),
        ("get", "/jobs", "limit"),
        ("get", "/jobs", "cursor"),
        ("get", "/resellers", "status"),
        ("get", "/customers", "reseller_id"),
        ("get", "/projects", "customer_id"),
        ("get", "/job-types", "enabled"),
        ("get", "/job-types", "processor_type"),
        ("get", "/customers/{customer_id}/wallet/transactions", "limit"),
        ("get", "/runners", "status"),
    ]:
        assert expected in checked, f"{expected} is not documented as a query parameter"
    assert failures == [], "\n".join(failures)
