"""/schedules (docs/API.md "Schedules"): recurring jobs from a cron expression in a time zone.

CRUD and bad input over HTTP; firing through the real sweeper of served processes. A tick is
made due without waiting for the clock by writing a past ``next_run_at`` straight into the
database, as the clock reaching it would. Counting tests use a yearly cron (``0 0 1 1 *``) so
that no tick of the clock itself fires during the test: every job comes from a forced tick.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from helpers import (
    IS_POSTGRES,
    ServerProcess,
    all_jobs,
    assert_envelope,
    assert_reconciled,
    create_job_type,
    create_tenant,
    db_query,
    running,
    submit,
    wait_all_final,
    wait_for,
    wait_for_status,
    walk_pages,
)

YEARLY = "0 0 1 1 *"  # never fires by itself during a test run


# --- helpers ------------------------------------------------------------------------------------
def parse(ts: str | None) -> datetime | None:
    return None if ts is None else datetime.fromisoformat(ts.replace("Z", "+00:00"))


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def body(customer_id: str, job_type_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "customer_id": customer_id,
        "job_type_id": job_type_id,
        "input_data": {"n": 1},
        "cron": YEARLY,
        **extra,
    }


def create(api: httpx.Client, customer_id: str, job_type_id: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/schedules", json=body(customer_id, job_type_id, **extra))
    assert response.status_code == 201, response.text
    return response.json()


def read(api: httpx.Client, schedule_id: str) -> dict[str, Any]:
    response = api.get(f"/schedules/{schedule_id}")
    assert response.status_code == 200, response.text
    return response.json()


def _db_time(moment: datetime) -> Any:
    # Written the way Tortoise writes it: SQLite compares the text, PostgreSQL a timestamptz.
    return moment if IS_POSTGRES else moment.astimezone(UTC).isoformat(" ")


def make_due(
    database_url: str,
    tick: datetime,
    *,
    schedule_id: str | None = None,
    customer_id: str | None = None,
) -> None:
    """Set ``next_run_at`` to the past ``tick`` (one schedule, or every one of a customer)."""
    column, value = ("id", schedule_id) if schedule_id else ("customer_id", customer_id)
    assert value is not None
    db_query(
        database_url,
        f"UPDATE schedules SET next_run_at = {{}} WHERE {column} = {{}}",
        [_db_time(tick), uuid.UUID(value)],
    )


def fired(api: httpx.Client, schedule_id: str, tick: datetime) -> dict[str, Any]:
    """The schedule once the sweeper has handled ``tick`` (advanced past it)."""

    def done() -> dict[str, Any] | None:
        schedule = read(api, schedule_id)
        return schedule if parse(schedule["last_run_at"]) == tick else None

    return wait_for(done, timeout=30, what=f"schedule {schedule_id} fires tick {tick}")


def jobs_by_schedule(database_url: str, customer_id: str) -> dict[str | None, list[str]]:
    rows = db_query(
        database_url,
        "SELECT id, schedule_id FROM jobs WHERE customer_id = {}",
        [uuid.UUID(customer_id)],
    )
    out: dict[str | None, list[str]] = {}
    for row in rows:
        key = None if row["schedule_id"] is None else str(row["schedule_id"])
        out.setdefault(key, []).append(str(row["id"]))
    return out


def next_local(now: datetime, hour: int, zone: str) -> datetime:
    """The first ``hour``:00 wall-clock time in ``zone`` strictly after ``now``, in UTC."""
    local = now.astimezone(ZoneInfo(zone))
    candidate = local.replace(hour=hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate = (candidate + timedelta(days=1)).replace(hour=hour)
    # Rebuild from the wall-clock fields so the offset is the one of that day (DST).
    wall = datetime(candidate.year, candidate.month, candidate.day, hour, tzinfo=ZoneInfo(zone))
    return wall.astimezone(UTC)


@pytest.fixture(scope="module", autouse=True)
def quiet_afterwards(api: httpx.Client):
    """The server is shared with other modules: leave no schedule whose clock ticks could
    create jobs under their feet."""
    yield
    for page in walk_pages(api, "/schedules", {"enabled": "true"}, limit=200):
        for schedule in page:
            if schedule["cron"] != YEARLY:
                response = api.patch(f"/schedules/{schedule['id']}", json={"enabled": False})
                assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def tenant(api: httpx.Client):
    return create_tenant(api, balance_cents=100_000)


@pytest.fixture(scope="module")
def echo(api: httpx.Client) -> dict[str, Any]:
    return create_job_type(api, "test-echo", cost=1)


# --- CRUD ---------------------------------------------------------------------------------------
def test_create_answers_the_schedule_with_its_first_tick(api, tenant, echo):
    before = datetime.now(UTC)
    response = api.post(
        "/schedules",
        json=body(
            tenant.customer_id,
            echo["id"],
            cron="*/5  *  * * *",
            name="every five",
            project_id=tenant.project_id,
            priority="high",
        ),
    )
    after = datetime.now(UTC)
    assert response.status_code == 201, response.text
    schedule = response.json()
    assert list(schedule) == [
        "id",
        "customer_id",
        "project_id",
        "job_type_id",
        "name",
        "input_data",
        "priority",
        "cron",
        "timezone",
        "enabled",
        "next_run_at",
        "last_run_at",
        "last_job_id",
        "last_error",
        "created_at",
        "updated_at",
    ]
    assert schedule["customer_id"] == tenant.customer_id
    assert schedule["project_id"] == tenant.project_id
    assert schedule["job_type_id"] == echo["id"]
    assert schedule["name"] == "every five"
    assert schedule["input_data"] == {"n": 1}
    assert schedule["priority"] == "high"
    assert schedule["cron"] == "*/5 * * * *"  # whitespace normalized
    assert schedule["timezone"] == "UTC"
    assert schedule["enabled"] is True
    assert (schedule["last_run_at"], schedule["last_job_id"], schedule["last_error"]) == (
        None,
        None,
        None,
    )
    tick = parse(schedule["next_run_at"])
    assert tick is not None and tick.second == 0 and tick.minute % 5 == 0
    assert before < tick <= after + timedelta(minutes=5)
    assert read(api, schedule["id"]) == schedule


def test_defaults_and_a_disabled_schedule_has_no_next_run(api, tenant, echo):
    schedule = create(api, tenant.customer_id, echo["id"], enabled=False)
    assert schedule["enabled"] is False and schedule["next_run_at"] is None
    assert schedule["name"] == "" and schedule["priority"] is None
    assert schedule["project_id"] is None and schedule["timezone"] == "UTC"


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_next_run_is_the_wall_clock_time_in_the_schedule_timezone(api, tenant, echo, zone):
    before = datetime.now(UTC)
    schedule = create(api, tenant.customer_id, echo["id"], cron="0 9 * * *", timezone=zone)
    after = datetime.now(UTC)
    # 09:00 in Berlin is 08:00Z in winter and 07:00Z in summer: zoneinfo decides, not the test.
    expected = {next_local(before, 9, zone), next_local(after, 9, zone)}
    assert parse(schedule["next_run_at"]) in expected, (schedule["next_run_at"], expected)
    assert schedule["timezone"] == zone


def test_patch_changes_fields_and_recomputes_next_run(api, tenant, echo):
    schedule = create(api, tenant.customer_id, echo["id"])
    sid = schedule["id"]
    yearly_tick = parse(schedule["next_run_at"])
    assert yearly_tick is not None and (yearly_tick.month, yearly_tick.day) == (1, 1)

    # Fields that do not touch the timing leave next_run_at alone.
    changed = api.patch(
        f"/schedules/{sid}", json={"name": "renamed", "input_data": {"n": 2}, "priority": "low"}
    )
    assert changed.status_code == 200, changed.text
    out = changed.json()
    assert (out["name"], out["input_data"], out["priority"]) == ("renamed", {"n": 2}, "low")
    assert out["next_run_at"] == schedule["next_run_at"]
    assert parse(out["updated_at"]) > parse(schedule["updated_at"])
    assert read(api, sid) == out

    # priority null: back to the job type's default
    assert api.patch(f"/schedules/{sid}", json={"priority": None}).json()["priority"] is None

    # A new cron recomputes from now.
    before = datetime.now(UTC)
    hourly = api.patch(f"/schedules/{sid}", json={"cron": "30 * * * *"}).json()
    tick = parse(hourly["next_run_at"])
    assert tick.minute == 30 and before < tick <= before + timedelta(hours=1)

    # A new time zone recomputes too.
    before = datetime.now(UTC)
    daily = api.patch(
        f"/schedules/{sid}", json={"cron": "0 9 * * *", "timezone": "Europe/Berlin"}
    ).json()
    after = datetime.now(UTC)
    expected = {next_local(before, 9, "Europe/Berlin"), next_local(after, 9, "Europe/Berlin")}
    assert parse(daily["next_run_at"]) in expected

    # Disabling clears it; enabling computes it afresh.
    off = api.patch(f"/schedules/{sid}", json={"enabled": False}).json()
    assert off["enabled"] is False and off["next_run_at"] is None
    again = api.patch(f"/schedules/{sid}", json={"cron": YEARLY}).json()
    assert again["cron"] == YEARLY and again["next_run_at"] is None  # still disabled
    on = api.patch(f"/schedules/{sid}", json={"enabled": True}).json()
    new_year = datetime(yearly_tick.year, 1, 1, tzinfo=ZoneInfo("Europe/Berlin"))
    assert on["enabled"] is True and parse(on["next_run_at"]) == new_year  # 23:00Z the day before
    utc = api.patch(f"/schedules/{sid}", json={"timezone": "UTC"}).json()
    assert utc["next_run_at"] == schedule["next_run_at"]

    # An empty PATCH changes nothing.
    assert api.patch(f"/schedules/{sid}", json={}).json() == read(api, sid)


def test_delete_is_204_then_404(api, tenant, echo):
    schedule = create(api, tenant.customer_id, echo["id"])
    assert api.delete(f"/schedules/{schedule['id']}").status_code == 204
    assert_envelope(api.get(f"/schedules/{schedule['id']}"), 404, "not_found")
    assert_envelope(api.delete(f"/schedules/{schedule['id']}"), 404, "not_found")
    assert_envelope(api.patch(f"/schedules/{schedule['id']}", json={"name": "x"}), 404)


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
def test_unknown_schedule_is_404(api, method):
    kwargs = {"json": {"name": "x"}} if method == "patch" else {}
    response = getattr(api, method)(f"/schedules/{uuid.uuid4()}", **kwargs)
    assert_envelope(response, 404, "not_found")


# --- bad input ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("61 * * * *", "Bad minute"),
        ("* 24 * * *", "Bad hour"),
        ("0 0 30 2 *", "Bad day-of-month"),
        ("0 0 * 13 *", "Bad month"),
        ("0 0 * * 8", "Bad day-of-week"),
        ("* * * *", "5 fields"),
        ("0 * * * * *", "5 fields"),  # cronsim's seconds field is not part of the contract
        ("@daily", "5 fields"),
        ("every day", "5 fields"),
        ("   ", "5 fields"),
    ],
)
def test_bad_cron_is_422_with_the_reason(api, tenant, echo, cron, reason):
    response = api.post("/schedules", json=body(tenant.customer_id, echo["id"], cron=cron))
    error = assert_envelope(response, 422, "validation_error")
    assert error["details"][0]["field"] == "cron", error
    assert reason in error["details"][0]["message"], error


@pytest.mark.parametrize(
    "zone", ["Mars/Olympus_Mons", "europe/berlin", "../etc/passwd", "/etc/localtime", "Europe/"]
)
def test_bad_timezone_is_422(api, tenant, echo, zone):
    response = api.post("/schedules", json=body(tenant.customer_id, echo["id"], timezone=zone))
    error = assert_envelope(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["timezone"], error


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"no_such_field": 1}, "no_such_field"),
        ({"cron": 5}, "cron"),
        ({"cron": ""}, "cron"),
        ({"timezone": ""}, "timezone"),
        ({"timezone": None}, "timezone"),
        ({"enabled": "yes"}, "enabled"),
        ({"priority": "urgent"}, "priority"),
        ({"input_data": [1]}, "input_data"),
        ({"name": "x" * 201}, "name"),
        ({"project_id": "nope"}, "project_id"),
        ({"next_run_at": "2030-01-01T00:00:00Z"}, "next_run_at"),
    ],
)
def test_bad_create_body_is_422_and_creates_nothing(api, tenant, echo, change, field):
    before = api.get("/schedules", params={"customer_id": tenant.customer_id, "limit": 200})
    response = api.post("/schedules", json={**body(tenant.customer_id, echo["id"]), **change})
    error = assert_envelope(response, 422, "validation_error")
    assert field in [d["field"] for d in error["details"]], error
    after = api.get("/schedules", params={"customer_id": tenant.customer_id, "limit": 200})
    assert after.json() == before.json()


@pytest.mark.parametrize("missing", ["customer_id", "job_type_id", "input_data", "cron"])
def test_missing_required_field_is_422(api, tenant, echo, missing):
    data = body(tenant.customer_id, echo["id"])
    del data[missing]
    error = assert_envelope(api.post("/schedules", json=data), 422, "validation_error")
    assert [d["field"] for d in error["details"]] == [missing], error


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"customer_id": str(uuid.uuid4())}, "customer_id", "cannot be changed"),
        ({"job_type_id": str(uuid.uuid4())}, "job_type_id", "cannot be changed"),
        ({"project_id": None}, "project_id", "cannot be changed"),
        ({"next_run_at": "2030-01-01T00:00:00Z"}, "next_run_at", "cannot be changed"),
        ({"last_job_id": None}, "last_job_id", "cannot be changed"),
        ({"id": str(uuid.uuid4())}, "id", "cannot be changed"),
        ({"colour": "red"}, "colour", "unknown field"),
        ({"name": None}, "name", None),
        ({"cron": None}, "cron", None),
        ({"enabled": None}, "enabled", None),
        ({"input_data": None}, "input_data", None),
        ({"cron": "61 * * * *"}, "cron", "Bad minute"),
        ({"timezone": "Nowhere/City"}, "timezone", None),
    ],
)
def test_bad_patch_is_422_and_changes_nothing(api, tenant, echo, change, field, message):
    schedule = create(api, tenant.customer_id, echo["id"])
    error = assert_envelope(
        api.patch(f"/schedules/{schedule['id']}", json=change), 422, "validation_error"
    )
    assert field in [d["field"] for d in error["details"]], error
    if message:
        assert message in error["details"][0]["message"], error
    assert read(api, schedule["id"]) == schedule


def test_unknown_ids_are_404_naming_the_field(api, tenant, echo):
    other = create_tenant(api, balance_cents=0)
    cases = [
        ({"customer_id": str(uuid.uuid4())}, "customer_id"),
        ({"job_type_id": str(uuid.uuid4())}, "job_type_id"),
        ({"project_id": str(uuid.uuid4())}, "project_id"),
        ({"project_id": other.project_id}, "project_id"),  # another customer's project
    ]
    for change, field in cases:
        response = api.post("/schedules", json={**body(tenant.customer_id, echo["id"]), **change})
        error = assert_envelope(response, 404, "not_found")
        assert [d["field"] for d in error["details"]] == [field], (change, error)


def test_input_is_validated_by_the_processor(api, tenant):
    sleep = create_job_type(api, "test-sleep", cost=1)
    response = api.post(
        "/schedules", json=body(tenant.customer_id, sleep["id"], input_data={"seconds": "long"})
    )
    error = assert_envelope(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["input_data.seconds"], error

    schedule = create(api, tenant.customer_id, sleep["id"], input_data={"seconds": 0})
    patched = api.patch(f"/schedules/{schedule['id']}", json={"input_data": {"seconds": -1}})
    error = assert_envelope(patched, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["input_data.seconds"], error
    assert read(api, schedule["id"])["input_data"] == {"seconds": 0}


def test_project_scoped_job_type_needs_its_project(api, tenant):
    scoped = create_job_type(api, "test-echo", cost=1, project_id=tenant.project_id)
    error = assert_envelope(
        api.post("/schedules", json=body(tenant.customer_id, scoped["id"])), 422
    )
    assert [d["field"] for d in error["details"]] == ["job_type_id"], error
    create(api, tenant.customer_id, scoped["id"], project_id=tenant.project_id)


def test_archived_or_disabled_targets_are_409(api, echo):
    # archived customer (it has a project, so DELETE archives it and the project)
    gone = create_tenant(api, balance_cents=0)
    assert api.delete(f"/customers/{gone.customer_id}").status_code == 200
    error = assert_envelope(api.post("/schedules", json=body(gone.customer_id, echo["id"])), 409)
    assert [d["field"] for d in error["details"]] == ["customer_id"], error

    # archived project of an active customer (a project-scoped job type keeps it from deletion)
    tenant = create_tenant(api, balance_cents=0)
    create_job_type(api, "test-echo", cost=1, project_id=tenant.project_id)
    assert api.delete(f"/projects/{tenant.project_id}").status_code == 200
    response = api.post(
        "/schedules", json=body(tenant.customer_id, echo["id"], project_id=tenant.project_id)
    )
    error = assert_envelope(response, 409)
    assert [d["field"] for d in error["details"]] == ["project_id"], error

    # archived job type (it has a schedule, so DELETE archives it)
    fresh = create_tenant(api, balance_cents=0)
    job_type = create_job_type(api, "test-echo", cost=1)
    schedule = create(api, fresh.customer_id, job_type["id"], enabled=False)
    assert api.delete(f"/job-types/{job_type['id']}").status_code == 200
    error = assert_envelope(
        api.post("/schedules", json=body(fresh.customer_id, job_type["id"])), 409
    )
    assert [d["field"] for d in error["details"]] == ["job_type_id"], error
    # ... and re-enabling a schedule of it is refused the same way
    error = assert_envelope(api.patch(f"/schedules/{schedule['id']}", json={"enabled": True}), 409)
    assert [d["field"] for d in error["details"]] == ["job_type_id"], error
    assert read(api, schedule["id"])["enabled"] is False

    # disabled job type
    disabled = create_job_type(api, "test-echo", cost=1, enabled=False)
    error = assert_envelope(
        api.post("/schedules", json=body(fresh.customer_id, disabled["id"])), 409
    )
    assert [d["field"] for d in error["details"]] == ["job_type_id"], error


def test_a_schedule_is_history_deleting_its_owners_archives_them(api):
    """A customer, project or job type a schedule points at is archived by DELETE, not removed
    (the schedule keeps its owners), never a 500."""
    reseller = api.post("/resellers", json={"name": "sched owner"}).json()
    customer = api.post(
        "/customers",
        json={
            "reseller_id": reseller["id"],
            "name": "C",
            "email": f"s-{uuid.uuid4().hex[:8]}@x.io",
        },
    ).json()
    project = api.post("/projects", json={"customer_id": customer["id"], "name": "P"}).json()
    job_type = create_job_type(api, "test-echo", cost=1)
    create(api, customer["id"], job_type["id"], project_id=project["id"], enabled=False)
    for path in (f"/job-types/{job_type['id']}", f"/projects/{project['id']}"):
        response = api.delete(path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["status"] == "archived"

    loose = api.post(
        "/customers",
        json={
            "reseller_id": reseller["id"],
            "name": "L",
            "email": f"l-{uuid.uuid4().hex[:8]}@x.io",
        },
    ).json()  # no project, no money: only the schedule is history
    other_type = create_job_type(api, "test-echo", cost=1)
    create(api, loose["id"], other_type["id"], enabled=False)
    response = api.delete(f"/customers/{loose['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "archived"


# --- lists --------------------------------------------------------------------------------------
def test_list_filters_and_pages_newest_first(api, echo):
    tenant = create_tenant(api, balance_cents=0)
    noop = create_job_type(api, "test-noop", cost=1)
    made = [
        create(api, tenant.customer_id, echo["id"]),
        create(api, tenant.customer_id, noop["id"], enabled=False),
        create(api, tenant.customer_id, echo["id"], project_id=tenant.project_id),
        create(api, tenant.customer_id, noop["id"]),
        create(api, tenant.customer_id, echo["id"], enabled=False),
    ]
    newest_first = [s["id"] for s in reversed(made)]

    def ids(**params: Any) -> list[str]:
        response = api.get("/schedules", params={"customer_id": tenant.customer_id, **params})
        assert response.status_code == 200, response.text
        return [s["id"] for s in response.json()["items"]]

    assert ids() == newest_first
    assert ids(job_type_id=noop["id"]) == [made[3]["id"], made[1]["id"]]
    assert ids(enabled="false") == [made[4]["id"], made[1]["id"]]
    assert ids(enabled="true", job_type_id=echo["id"]) == [made[2]["id"], made[0]["id"]]
    assert ids(project_id=tenant.project_id) == [made[2]["id"]]
    assert ids(customer_id=str(uuid.uuid4())) == []

    pages = walk_pages(api, "/schedules", {"customer_id": tenant.customer_id}, limit=2)
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [s["id"] for page in pages for s in page] == newest_first


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "x"}, "limit"),
        ({"cursor": "garbage"}, "cursor"),
        ({"enabled": "maybe"}, "enabled"),
        ({"customer_id": "not-a-uuid"}, "customer_id"),
        ({"job_type_id": "12"}, "job_type_id"),
        ({"status": "active"}, "status"),  # schedules have no status: unknown parameter
    ],
)
def test_bad_list_parameter_is_422(api, params, field):
    error = assert_envelope(api.get("/schedules", params=params), 422, "validation_error")
    assert field in [d["field"] for d in error["details"]], error


def test_repeated_list_parameter_is_422(api):
    response = api.get("/schedules?limit=1&limit=2")
    error = assert_envelope(response, 422, "validation_error")
    assert [d["field"] for d in error["details"]] == ["limit"], error


# --- firing -------------------------------------------------------------------------------------
def test_a_due_tick_submits_a_job_that_runs(api, server, tenant, echo):
    schedule = create(
        api, tenant.customer_id, echo["id"], cron="* * * * *", input_data={"from": "cron"}
    )
    tick = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
    make_due(server.database_url, tick, schedule_id=schedule["id"])

    # The clock's own minute tick may fire right after the forced one: wait for either.
    done = wait_for(
        lambda: (s := read(api, schedule["id"]))["last_run_at"] and s,
        what="the forced tick fires",
    )
    assert parse(done["last_run_at"]) >= tick and done["last_error"] is None
    # Missed ticks are skipped: the next one is the first minute after now, not 12:01 of 2024.
    following = parse(done["next_run_at"])
    assert following.second == 0 and following > datetime.now(UTC) - timedelta(minutes=1)
    assert following <= datetime.now(UTC) + timedelta(minutes=1)

    made = jobs_by_schedule(server.database_url, tenant.customer_id).get(schedule["id"], [])
    assert 1 <= len(made) <= 2, made  # the forced tick, and perhaps one of the clock
    assert done["last_job_id"] in made
    for job_id in made:
        job = wait_for_status(api, job_id)
        assert job["status"] == "succeeded", job
        assert job["result"] == {"echo": {"from": "cron"}}
        assert job["customer_id"] == tenant.customer_id and job["job_type_id"] == echo["id"]
        assert job["priority"] == echo["default_priority"]


def test_priority_is_the_schedules_or_the_job_types_default(api, server, tenant):
    low = create_job_type(api, "test-noop", cost=1, default_priority="low")
    own = create(api, tenant.customer_id, low["id"], priority="high")
    default = create(api, tenant.customer_id, low["id"])
    tick = datetime(2024, 4, 1, tzinfo=UTC)
    for schedule in (own, default):
        make_due(server.database_url, tick, schedule_id=schedule["id"])
    priorities = [
        api.get(f"/jobs/{fired(api, s['id'], tick)['last_job_id']}").json()["priority"]
        for s in (own, default)
    ]
    assert priorities == ["high", "low"]


def test_a_replayed_tick_creates_no_second_job(api, server, echo):
    """A crash between the submit and the advance leaves next_run_at on the tick already fired:
    firing it again answers with the first job (the tick's idempotency key)."""
    tenant = create_tenant(api, balance_cents=1_000)
    schedule = create(api, tenant.customer_id, echo["id"])
    tick = datetime(2024, 1, 1, tzinfo=UTC)
    make_due(server.database_url, tick, schedule_id=schedule["id"])
    first = fired(api, schedule["id"], tick)

    make_due(server.database_url, tick, schedule_id=schedule["id"])  # as if never advanced

    def advanced_again() -> dict[str, Any] | None:
        now = read(api, schedule["id"])
        return now if parse(now["updated_at"]) > parse(first["updated_at"]) else None

    again = wait_for(advanced_again, what="the replayed tick is advanced")
    assert again["last_job_id"] == first["last_job_id"]
    assert again["next_run_at"] == first["next_run_at"]
    assert [j["id"] for j in all_jobs(api, tenant.customer_id)] == [first["last_job_id"]]


# (Archiving the customer disables its schedules instead: see the archiving test below.)
@pytest.mark.parametrize("cause", ["empty wallet", "disabled job type"])
def test_a_refused_tick_records_last_error_and_is_skipped(api, server, cause):
    tenant = create_tenant(api, balance_cents=0 if cause == "empty wallet" else 1_000)
    job_type = create_job_type(api, "test-echo", cost=10)
    schedule = create(api, tenant.customer_id, job_type["id"])
    if cause == "disabled job type":
        assert api.patch(f"/job-types/{job_type['id']}", json={"enabled": False}).is_success
    tick = datetime(2024, 2, 1, tzinfo=UTC)
    make_due(server.database_url, tick, schedule_id=schedule["id"])

    done = fired(api, schedule["id"], tick)
    expected = {"empty wallet": "open-to-buy", "disabled job type": "disabled"}[cause]
    assert done["last_error"] and expected in done["last_error"], done
    assert done["last_job_id"] is None
    assert done["next_run_at"] == schedule["next_run_at"]  # advanced to the next real tick
    assert done["enabled"] is True
    assert all_jobs(api, tenant.customer_id) == []

    if cause == "empty wallet":  # money arrives: the next tick runs and clears the error
        top = api.post(
            f"/customers/{tenant.customer_id}/wallet/top-ups", json={"amount_cents": 100}
        )
        assert top.status_code == 201, top.text
        later_tick = datetime(2024, 2, 2, tzinfo=UTC)
        make_due(server.database_url, later_tick, schedule_id=schedule["id"])
        ok = fired(api, schedule["id"], later_tick)
        assert ok["last_error"] is None and ok["last_job_id"] is not None
        assert wait_for_status(api, ok["last_job_id"])["status"] == "succeeded"
        assert_reconciled(api, tenant.customer_id)


def test_a_disabled_schedule_never_fires(api, server, echo):
    tenant = create_tenant(api, balance_cents=1_000)
    off = create(api, tenant.customer_id, echo["id"], enabled=False)
    paused = create(api, tenant.customer_id, echo["id"])
    assert api.patch(f"/schedules/{paused['id']}", json={"enabled": False}).is_success
    # Even with a due tick in the database (written behind the API's back), nothing fires.
    make_due(server.database_url, datetime(2024, 5, 1, tzinfo=UTC), customer_id=tenant.customer_id)
    # A control schedule of another customer, made due at the same time, shows that sweeps ran.
    control_tenant = create_tenant(api, balance_cents=1_000)
    control = create(api, control_tenant.customer_id, echo["id"])
    tick = datetime(2024, 5, 1, tzinfo=UTC)
    make_due(server.database_url, tick, schedule_id=control["id"])
    fired(api, control["id"], tick)
    time.sleep(1.0)  # and a few more passes (the test servers sweep every 250 ms)
    for schedule in (off, paused):
        now = read(api, schedule["id"])
        assert now["last_run_at"] is None and now["last_job_id"] is None, now
    assert all_jobs(api, tenant.customer_id) == []


def test_deleting_a_schedule_keeps_its_jobs(api, server, echo):
    tenant = create_tenant(api, balance_cents=1_000)
    schedule = create(api, tenant.customer_id, echo["id"])
    tick = datetime(2024, 6, 1, tzinfo=UTC)
    make_due(server.database_url, tick, schedule_id=schedule["id"])
    job_id = fired(api, schedule["id"], tick)["last_job_id"]
    assert api.delete(f"/schedules/{schedule['id']}").status_code == 204
    assert wait_for_status(api, job_id)["status"] == "succeeded"
    assert jobs_by_schedule(server.database_url, tenant.customer_id) == {schedule["id"]: [job_id]}


def test_two_processes_fire_each_tick_exactly_once(make_server):
    """Two servers sweep one database: each forced tick of each schedule makes one job."""
    first = make_server()
    second = make_server(first.database_url)
    servers: list[ServerProcess] = [first, second]
    with running(*servers), httpx.Client(base_url=first.url, timeout=30) as client:
        first.start()
        second.start()
        tenant = create_tenant(client, balance_cents=100_000)
        job_type = create_job_type(client, "test-echo", cost=1)
        schedules = [create(client, tenant.customer_id, job_type["id"]) for _ in range(10)]
        ticks = [datetime(2020 + n, 1, 1, tzinfo=UTC) for n in range(3)]
        for tick in ticks:
            # Every schedule due at once, so both sweepers select the same batch.
            make_due(first.database_url, tick, customer_id=tenant.customer_id)
            for schedule in schedules:
                fired(client, schedule["id"], tick)

        done = wait_all_final(client, tenant.customer_id, servers)
        assert len(done) == len(schedules) * len(ticks)
        assert {j["status"] for j in done} == {"succeeded"}
        by_schedule = jobs_by_schedule(first.database_url, tenant.customer_id)
        assert sorted(by_schedule) == sorted(s["id"] for s in schedules)
        assert all(len(ids) == len(ticks) for ids in by_schedule.values()), by_schedule
        keys = db_query(
            first.database_url,
            "SELECT key FROM idempotency_keys WHERE customer_id = {}",
            [uuid.UUID(tenant.customer_id)],
        )
        assert len({k["key"] for k in keys}) == len(done)
        assert_reconciled(client, tenant.customer_id)


def test_submitted_jobs_and_scheduled_jobs_share_the_wallet(api, server, echo):
    """A scheduled job is an ordinary job: it holds, captures and reconciles like a submitted
    one."""
    tenant = create_tenant(api, balance_cents=10)
    schedule = create(api, tenant.customer_id, echo["id"])
    manual = submit(api, tenant.customer_id, echo["id"], {"manual": True})
    tick = datetime(2024, 7, 1, tzinfo=UTC)
    make_due(server.database_url, tick, schedule_id=schedule["id"])
    scheduled = fired(api, schedule["id"], tick)["last_job_id"]
    for job_id in (manual["id"], scheduled):
        assert wait_for_status(api, job_id)["status"] == "succeeded"
    wallet = api.get(f"/customers/{tenant.customer_id}/wallet").json()
    assert (wallet["balance_cents"], wallet["held_cents"]) == (8, 0)
    assert_reconciled(api, tenant.customer_id)


def test_a_sync_type_schedule_does_not_stall_the_sweeper(make_server):
    """A Sync job type makes POST /jobs wait for the job; a tick must not: the sweeper (and the
    heartbeat that keeps leases alive) runs on, and the next schedule fires at once."""
    srv = make_server().start()
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as client:
        tenant = create_tenant(client, balance_cents=1_000)
        slow_type = create_job_type(
            client, "test-sync-sleep", cost=1, processor_type="sync", sync_timeout_ms=20_000
        )
        echo_type = create_job_type(client, "test-echo", cost=1)
        slow = create(client, tenant.customer_id, slow_type["id"], input_data={"seconds": 5})
        quick = create(client, tenant.customer_id, echo_type["id"])
        slow_tick, quick_tick = datetime(2024, 8, 1, tzinfo=UTC), datetime(2024, 8, 2, tzinfo=UTC)
        make_due(srv.database_url, slow_tick, schedule_id=slow["id"])  # fired first
        make_due(srv.database_url, quick_tick, schedule_id=quick["id"])
        started = time.monotonic()
        fired(client, quick["id"], quick_tick)
        assert time.monotonic() - started < 3, "the quick schedule waited for the slow job"
        job_id = fired(client, slow["id"], slow_tick)["last_job_id"]
        assert wait_for_status(client, job_id)["status"] == "succeeded"


@pytest.mark.parametrize("owner", ["customer", "job_type"])
def test_archiving_its_owner_disables_a_schedule(api, owner):
    own = create_tenant(api, balance_cents=100)
    job_type = create_job_type(api, "test-echo", cost=1)
    schedule = create(api, own.customer_id, job_type["id"])
    submit(api, own.customer_id, job_type["id"], {})  # history, so DELETE archives
    path = (
        f"/customers/{own.customer_id}" if owner == "customer" else f"/job-types/{job_type['id']}"
    )
    archived = api.delete(path)
    assert archived.status_code == 200 and archived.json()["status"] == "archived"
    after = read(api, schedule["id"])
    assert (after["enabled"], after["next_run_at"]) == (False, None)


def test_scheduler_keys_are_reserved(api, tenant, echo):
    response = api.post(
        "/jobs",
        json={"customer_id": tenant.customer_id, "job_type_id": echo["id"], "input_data": {}},
        headers={"Idempotency-Key": "schedule:anything"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == "Idempotency-Key"
