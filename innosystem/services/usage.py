"""Usage and cost reporting: jobs created in a window, counted by status, and the cents captured
for them, per job type, project, customer or UTC day.

Captured cents are the cost of the succeeded jobs: a job's hold is captured, for exactly its
``cost_cents``, in the transaction that marks it succeeded, so the two cannot disagree. They are
keyed by currency because a reseller's customers may bill in different ones.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from innosystem import db
from innosystem.errors import ValidationFailed
from innosystem.models import Customer, JobStatus, JobType, Project
from innosystem.services import tenants
from innosystem.services.runners import utcnow

DEFAULT_WINDOW = timedelta(days=30)
MAX_WINDOW = timedelta(days=366)
GROUPS = ("job_type", "project", "day")
RESELLER_GROUPS = (*GROUPS, "customer")


def window(start: datetime | None, end: datetime | None) -> tuple[datetime, datetime]:
    end = (end or utcnow()).astimezone(UTC)
    start = (start or end - DEFAULT_WINDOW).astimezone(UTC)
    if start >= end:
        raise ValidationFailed.field("from", "must be earlier than to")
    if end - start > MAX_WINDOW:
        raise ValidationFailed.field("to", "the window may span at most 366 days")
    return start, end


def _key_sql(group_by: str, dialect: str) -> str:
    if group_by == "day":
        if dialect == "postgres":
            return "to_char(j.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
        return "substr(j.created_at, 1, 10)"  # stored as 'YYYY-MM-DD HH:MM:SS...+00:00' (UTC)
    return {"job_type": "j.job_type_id", "project": "j.project_id", "customer": "j.customer_id"}[
        group_by
    ]


def _empty_counts() -> dict[str, int]:
    return {**{s.value: 0 for s in JobStatus}, "total": 0}


async def _names(group_by: str, keys: list[str]) -> dict[str, str]:
    model: Any = {"job_type": JobType, "project": Project, "customer": Customer}.get(group_by)
    if model is None or not keys:
        return {}
    rows = await model.filter(id__in=keys).values_list("id", "name")
    return {str(row_id): name for row_id, name in rows}


async def report(
    *,
    customer_id: uuid.UUID | None = None,
    reseller_id: uuid.UUID | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    group_by: str = "job_type",
) -> dict[str, Any]:
    """Usage of one customer, or of every customer of one reseller."""
    allowed = RESELLER_GROUPS if reseller_id is not None else GROUPS
    if group_by not in allowed:
        raise ValidationFailed.field("group_by", "must be one of " + ", ".join(allowed))
    start, end = window(start, end)
    if reseller_id is not None:
        await tenants.get_reseller(reseller_id)
        scope, scope_id = "c.reseller_id = ?", reseller_id
    else:
        assert customer_id is not None
        await tenants.get_customer(customer_id)
        scope, scope_id = "j.customer_id = ?", customer_id

    conn = db.connection()
    key = _key_sql(group_by, conn.capabilities.dialect)
    rows = await db.fetch(
        conn,
        f"SELECT {key} AS k, j.status AS status, w.currency AS currency, COUNT(*) AS n, "
        "COALESCE(SUM(j.cost_cents), 0) AS cost "
        "FROM jobs j JOIN customers c ON c.id = j.customer_id "
        "JOIN wallets w ON w.customer_id = j.customer_id "
        f"WHERE {scope} AND j.created_at >= ? AND j.created_at < ? "
        f"GROUP BY {key}, j.status, w.currency",
        [str(scope_id), db.time_param(conn, start), db.time_param(conn, end)],
    )

    totals: dict[str, Any] = {"jobs": _empty_counts(), "captured_cents": {}}
    groups: dict[str | None, dict[str, Any]] = {}
    for row in rows:
        group_key = None if row["k"] is None else str(row["k"])
        group = groups.setdefault(
            group_key,
            {"key": group_key, "name": None, "jobs": _empty_counts(), "captured_cents": {}},
        )
        count = int(row["n"])
        for bucket in (group, totals):
            bucket["jobs"][row["status"]] += count
            bucket["jobs"]["total"] += count
            if row["status"] == JobStatus.SUCCEEDED.value:
                captured = bucket["captured_cents"]
                captured[row["currency"]] = captured.get(row["currency"], 0) + int(row["cost"])
    names = await _names(group_by, [k for k in groups if k is not None])
    for group_key, group in groups.items():
        group["name"] = names.get(group_key) if group_key is not None else None
    ordered = sorted(
        groups.values(),
        key=lambda g: (g["key"] is None, g["key"] if group_by == "day" else (g["name"] or "")),
    )
    return {
        "customer_id": str(customer_id) if customer_id else None,
        "reseller_id": str(reseller_id) if reseller_id else None,
        "from": start,
        "to": end,
        "group_by": group_by,
        "totals": totals,
        "groups": ordered,
    }
