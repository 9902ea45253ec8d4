"""Retention: delete finished jobs (and old uploads) past a cutoff, in short bounded batches.

What goes, per batch of at most ``batch`` jobs, in one short transaction:
* finished jobs (succeeded, failed, cancelled) whose ``finished_at`` is older than the cutoff,
  selected through the ``(status, finished_at)`` index;
* their ``job_events``, ``job_attempts`` and output ``artifacts`` rows (deleted explicitly, so
  they can be counted; the foreign keys would cascade anyway);
* after the commit, the output files of those jobs in the artifact store (a missing file is
  fine; a crash between the commit and the file deletion leaves unreferenced files, never a row
  pointing at nothing, as for uploads).

Uploads (``kind = "upload"``, no job) are kept for the retention period: an upload created
before the cutoff is deleted, row then file, in batches of the same size, whether or not a job
still names it (a pending job that reads a pruned upload fails with ``UploadNotFound``).

Never touched: ``wallet_transactions`` (the ledger is never pruned; its ``job_id`` is not a
foreign key for this reason, so money still reconciles), wallets, tenants, job types, schedules,
idempotency keys (the sweeper purges those on their own clock), running and pending jobs.

Many processes may prune at once. On PostgreSQL each batch locks its candidate rows with
``FOR UPDATE SKIP LOCKED``, so concurrent pruners take different rows and never wait on each
other; on SQLite writers are serialised, and a second delete of the same ids finds fewer rows.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from innosystem import db
from innosystem.artifacts import LocalArtifactStore
from innosystem.models import Artifact, Job, JobAttempt, JobEvent, JobStatus
from innosystem.services.runners import utcnow

FINAL = (JobStatus.SUCCEEDED.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)

#: ids per ``IN (...)`` list: well below SQLite's bound-parameter limit.
CHUNK = 500

#: After a sweeper pass that found nothing to prune, this process skips this many poll
#: intervals before looking again (the upload scan is not free, and retention is counted in days).
IDLE_PASSES = 10

_FINAL_SQL = ", ".join(f"'{status}'" for status in FINAL)


@dataclass
class PruneReport:
    """What one prune deleted (or, for a dry run, would delete)."""

    cutoff: datetime
    jobs: int = 0
    events: int = 0
    attempts: int = 0
    artifacts: int = 0  # output artifact rows of the pruned jobs
    uploads: int = 0  # upload artifact rows
    files: int = 0  # files removed from the artifact store (outputs and uploads)
    batches: int = 0
    seconds: float = 0.0
    dry_run: bool = False

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["cutoff"] = self.cutoff.isoformat()
        out["seconds"] = round(self.seconds, 3)
        return out

    def summary(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        rate = ""
        if self.jobs and self.seconds and not self.dry_run:
            rate = f", {self.jobs / self.seconds:.0f} jobs/s"
        return (
            f"prune{' (dry run)' if self.dry_run else ''}: {verb} {self.jobs} jobs, "
            f"{self.events} job_events, {self.attempts} job_attempts, "
            f"{self.artifacts + self.uploads} artifacts ({self.artifacts} outputs, "
            f"{self.uploads} uploads), {self.files} files in {self.batches} batches "
            f"({self.seconds:.2f} s{rate}); finished before {self.cutoff.isoformat()}; "
            "ledger untouched"
        )


def _chunks(ids: Sequence[Any]) -> Iterator[Sequence[Any]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _is_postgres() -> bool:
    return db.connection().capabilities.dialect == "postgres"


async def _select(
    conn: BaseDBAsyncClient, text: str, cutoff: datetime, batch: int, lock: bool, order: str = ""
) -> list[dict[str, Any]]:
    # SKIP LOCKED: a concurrent pruner's rows are left to it, so pruners never wait or deadlock.
    suffix = " FOR UPDATE SKIP LOCKED" if lock else ""
    return await db.fetch(
        conn, f"{text}{order} LIMIT ?{suffix}", [db.time_param(conn, cutoff), batch]
    )


_JOBS_SQL = f"SELECT id FROM jobs WHERE status IN ({_FINAL_SQL}) AND finished_at < ?"
# The order is the (status, finished_at) index's own: it keeps the planners on that index (without
# it, SQLite with statistics and PostgreSQL both chose a full scan that skips every recent
# finished job on each batch), and the oldest jobs go first.
_JOBS_ORDER = " ORDER BY status, finished_at"
_UPLOADS_SQL = (
    "SELECT id, storage_key FROM artifacts "
    "WHERE job_id IS NULL AND kind = 'upload' AND created_at < ?"
)


async def _delete_jobs(
    conn: BaseDBAsyncClient, ids: Sequence[Any], report: PruneReport
) -> list[str]:
    """Delete the rows of these jobs and their children; returns the output files' keys."""
    keys: list[str] = []
    for chunk in _chunks(ids):
        # The first statement writes: on SQLite that takes the write lock before anything is
        # read, so the transaction cannot fail to upgrade a stale read snapshot.
        report.events += await JobEvent.filter(job_id__in=chunk).using_db(conn).delete()
        keys += await (
            Artifact.filter(job_id__in=chunk).using_db(conn).values_list("storage_key", flat=True)
        )
        report.artifacts += await Artifact.filter(job_id__in=chunk).using_db(conn).delete()
        report.attempts += await JobAttempt.filter(job_id__in=chunk).using_db(conn).delete()
        report.jobs += await Job.filter(id__in=chunk).using_db(conn).delete()
    return keys


async def _jobs_batch(
    cutoff: datetime, batch: int, report: PruneReport
) -> tuple[list[Any], list[str]]:
    """One transaction; returns (the candidate ids, output file keys to delete after commit)."""
    if _is_postgres():
        async with in_transaction() as conn:
            rows = await _select(conn, _JOBS_SQL, cutoff, batch, lock=True, order=_JOBS_ORDER)
            ids = [row["id"] for row in rows]
            keys = await _delete_jobs(conn, ids, report) if ids else []
        return ids, keys
    rows = await _select(db.connection(), _JOBS_SQL, cutoff, batch, lock=False, order=_JOBS_ORDER)
    ids = [row["id"] for row in rows]
    if not ids:
        return [], []
    async with in_transaction() as conn:
        keys = await _delete_jobs(conn, ids, report)
    return ids, keys


async def _uploads_batch(
    cutoff: datetime, batch: int, report: PruneReport
) -> tuple[int, list[str]]:
    """One transaction; returns (uploads selected, their file keys to delete after commit)."""

    async def delete(conn: BaseDBAsyncClient, rows: list[dict[str, Any]]) -> None:
        for chunk in _chunks([row["id"] for row in rows]):
            report.uploads += await Artifact.filter(id__in=chunk).using_db(conn).delete()

    if _is_postgres():
        async with in_transaction() as conn:
            rows = await _select(conn, _UPLOADS_SQL, cutoff, batch, lock=True)
            await delete(conn, rows)
    else:  # select first, then a transaction whose first statement writes (see _delete_jobs)
        rows = await _select(db.connection(), _UPLOADS_SQL, cutoff, batch, lock=False)
        if rows:
            async with in_transaction() as conn:
                await delete(conn, rows)
    return len(rows), [row["storage_key"] for row in rows]


def _delete_files(store: Any, keys: Sequence[str], job_ids: Sequence[Any]) -> int:
    """Remove files (blocking; run in a thread). A missing file is fine; another error is logged
    and the rest go on (the rows are already gone, so the file is merely unreferenced)."""
    deleted = 0
    for key in keys:
        try:
            store.delete(key)
            deleted += 1
        except FileNotFoundError:
            pass
        except Exception as exc:
            logger.warning("retention: could not delete artifact file {}: {}", key, exc)
    if isinstance(store, LocalArtifactStore):
        # jobs/<job>/<attempt>/ directories, and any file an attempt that died left behind.
        for job_id in job_ids:
            shutil.rmtree(store.root / "jobs" / str(job_id), ignore_errors=True)
    return deleted


def _default_store() -> Any:
    from innosystem.config import load_settings
    from innosystem.plugins import get_registry

    return get_registry().artifact_store(load_settings())


async def prune(
    older_than: timedelta,
    *,
    batch: int = 1000,
    max_batches: int | None = None,
    store: Any = None,
) -> PruneReport:
    """Delete finished jobs (and uploads) older than ``now - older_than`` in batches of at most
    ``batch`` jobs, each its own short transaction, until none is left or ``max_batches`` ran.

    ``store`` is the artifact store holding the files (default: the one the settings and
    plugins give)."""
    if batch < 1:
        raise ValueError("batch must be at least 1")
    started = time.monotonic()
    report = PruneReport(cutoff=utcnow() - older_than)
    if store is None:
        store = _default_store()
    uploads_left = True
    while max_batches is None or report.batches < max_batches:
        # Files go after each commit: the rows are gone, so no reader is handed a vanishing file.
        job_ids, keys = await _jobs_batch(report.cutoff, batch, report)
        if job_ids:
            report.files += await asyncio.to_thread(_delete_files, store, keys, job_ids)
        uploads = 0
        if uploads_left:
            uploads, keys = await _uploads_batch(report.cutoff, batch, report)
            uploads_left = uploads >= batch
            if uploads:
                report.files += await asyncio.to_thread(_delete_files, store, keys, ())
        if not job_ids and not uploads:
            break
        report.batches += 1
        # A short batch means nothing else was old enough when it was selected.
        if len(job_ids) < batch and not uploads_left:
            break
    report.seconds = time.monotonic() - started
    return report


async def count(older_than: timedelta, *, batch: int = 1000) -> PruneReport:
    """What :func:`prune` would delete now (a dry run: nothing is written)."""
    started = time.monotonic()
    report = PruneReport(cutoff=utcnow() - older_than, dry_run=True)
    conn = db.connection()
    cutoff = db.time_param(conn, report.cutoff)
    rows = await db.fetch(
        conn,
        f"SELECT (SELECT COUNT(*) FROM jobs WHERE status IN ({_FINAL_SQL}) AND finished_at < ?)"
        " AS jobs,"
        f" (SELECT COUNT(*) FROM job_events WHERE job_id IN ({_JOBS_SQL})) AS events,"
        f" (SELECT COUNT(*) FROM job_attempts WHERE job_id IN ({_JOBS_SQL})) AS attempts,"
        f" (SELECT COUNT(*) FROM artifacts WHERE job_id IN ({_JOBS_SQL})) AS artifacts,"
        f" (SELECT COUNT(*) FROM ({_UPLOADS_SQL}) u) AS uploads",
        [cutoff] * 5,
    )
    row = rows[0]
    report.jobs, report.events = int(row["jobs"]), int(row["events"])
    report.attempts, report.artifacts = int(row["attempts"]), int(row["artifacts"])
    report.uploads = int(row["uploads"])
    report.files = report.artifacts + report.uploads
    report.batches = max(math.ceil(report.jobs / batch), math.ceil(report.uploads / batch))
    report.seconds = time.monotonic() - started
    return report


_idle_until = 0.0


async def auto_prune(settings: Any, store: Any) -> PruneReport | None:
    """The sweeper's share: one bounded batch when ``retention_days`` is set, so a pass never
    holds a long lock. After a pass that found nothing, this process looks again only after
    ``IDLE_PASSES`` poll intervals. Errors are logged, never raised (the next pass retries)."""
    global _idle_until
    if settings.retention_days <= 0 or time.monotonic() < _idle_until:
        return None
    try:
        report = await prune(
            timedelta(days=settings.retention_days),
            batch=settings.retention_batch,
            max_batches=1,
            store=store,
        )
    except Exception as exc:
        logger.warning("retention: prune failed: {}", exc)
        return None
    if report.batches:
        logger.info("retention: {}", report.summary())
    else:
        _idle_until = time.monotonic() + IDLE_PASSES * settings.poll_interval_ms / 1000
    return report
