"""Seed data (``seed/seed.toml``): the seed system's job types and a funded demo tenant.

Idempotent by fixed ids: running it twice leaves the same rows, and a demo wallet is funded only
when it is created, so restarts never mint money.
"""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any

from loguru import logger

from innosystem.errors import ConfigError
from innosystem.models import Customer, JobType, Project, Reseller
from innosystem.services import billing, tenants

_REPO_SEED = Path(__file__).resolve().parents[2] / "seed" / "seed.toml"


def find_seed_file(configured: str) -> Path | None:
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise ConfigError(f"INNOSYSTEM_SEED_FILE: {configured!r} does not exist")
        return path
    for candidate in (Path.cwd() / "seed" / "seed.toml", _REPO_SEED):
        if candidate.is_file():
            return candidate
    return None


async def apply_seed(path: Path) -> dict[str, int]:
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    created = {"job_types": 0, "resellers": 0, "customers": 0, "projects": 0}

    for spec in data.get("job_types", []):
        spec = dict(spec)
        job_type_id = uuid.UUID(spec.pop("id"))
        if not await JobType.exists(id=job_type_id):
            await JobType.create(id=job_type_id, **spec)
            created["job_types"] += 1

    demo: dict[str, Any] = data.get("demo", {})
    if "reseller" in demo:
        r = demo["reseller"]
        if not await Reseller.exists(id=r["id"]):
            await Reseller.create(id=uuid.UUID(r["id"]), name=r["name"])
            created["resellers"] += 1
    if "customer" in demo:
        c = demo["customer"]
        if not await Customer.exists(id=c["id"]):
            await tenants.create_customer(
                uuid.UUID(demo["reseller"]["id"]),
                c["name"],
                c["email"],
                c.get("currency", "EUR"),
                c.get("credit_limit_cents", 0),
                customer_id=uuid.UUID(c["id"]),
            )
            if c.get("top_up_cents"):
                await billing.top_up(uuid.UUID(c["id"]), c["top_up_cents"], "seed")
            created["customers"] += 1
    if "project" in demo:
        p = demo["project"]
        if not await Project.exists(id=p["id"]):
            await Project.create(
                id=uuid.UUID(p["id"]),
                customer_id=uuid.UUID(c["id"]),
                name=p["name"],
                description=p.get("description", ""),
            )
            created["projects"] += 1
    logger.info("seed {}: created {}", path, created)
    return created
