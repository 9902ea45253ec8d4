"""Seed data (``seed/seed.toml``): the seed system's job types and a funded demo tenant.

Idempotent by fixed ids: running it twice leaves the same rows, and the demo wallet is funded
only if its ledger has no seed top-up yet, so restarts never mint money.
"""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any

from loguru import logger

from innosystem.errors import ConfigError
from innosystem.models import (
    Customer,
    JobType,
    LedgerKind,
    Project,
    Reseller,
    WalletTransaction,
)
from innosystem.services import billing, tenants

SEED_REFERENCE = "seed"
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
    for part, needs in (("customer", "reseller"), ("project", "customer")):
        if part in demo and needs not in demo:
            raise ConfigError(f"{path}: [demo.{part}] needs a [demo.{needs}]")
    c = demo.get("customer", {})
    if "reseller" in demo:
        r = demo["reseller"]
        if not await Reseller.exists(id=r["id"]):
            await Reseller.create(id=uuid.UUID(r["id"]), name=r["name"])
            created["resellers"] += 1
    if c:
        if not await Customer.exists(id=c["id"]):
            await tenants.create_customer(
                uuid.UUID(demo["reseller"]["id"]),
                c["name"],
                c["email"],
                c.get("currency", "EUR"),
                c.get("credit_limit_cents", 0),
                customer_id=uuid.UUID(c["id"]),
            )
            created["customers"] += 1
        # Keyed on the ledger, not on "customer just created": a seed that died between the two
        # steps still funds the wallet exactly once on its next run.
        funded = await WalletTransaction.exists(
            wallet__customer_id=c["id"], kind=LedgerKind.TOP_UP.value, reference=SEED_REFERENCE
        )
        if c.get("top_up_cents") and not funded:
            await billing.top_up(uuid.UUID(c["id"]), c["top_up_cents"], SEED_REFERENCE)
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
