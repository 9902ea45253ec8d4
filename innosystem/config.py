"""One frozen, typed Settings object: innosystem.toml < INNOSYSTEM_* env (and the seed's
aliases) < CLI flags.

Every key is declared once in ``FIELDS`` with its TOML location, env names, type and default, so
the file, the env and the docs cannot drift apart. Validation happens once, at start; a bad value
raises ``ConfigError`` whose message names the key, and the CLI prints that one line and exits.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from innosystem.errors import ConfigError

LOG_LEVELS = ("TRACE", "DEBUG", "INFO", "SUCCESS", "WARNING", "ERROR", "CRITICAL")


@dataclass(frozen=True)
class Settings:
    """Validated configuration; build it with :func:`load_settings`, never by hand in production."""

    data_dir: Path = Path("var")
    database_url: str = ""  # "" → sqlite file under data_dir (resolved by load_settings)
    broker_url: str = "memory://"
    database_pool_size: int = 20
    broker_namespace: str = "innosystem"
    host: str = "127.0.0.1"
    port: int = 8080
    max_body_bytes: int = 1024 * 1024
    log_level: str = "INFO"
    log_format: str = "text"
    runner_id: str = ""  # "" → "<hostname>-<pid>"
    worker_threads: int = 8
    supported_job_types: tuple[str, ...] = ()
    poll_interval_ms: int = 2000
    lease_seconds: int = 6  # three heartbeats at the default poll interval
    requeue_after_seconds: int = 120
    priority_aging_seconds: int = 60
    cancel_grace_seconds: float = 10.0
    shutdown_timeout_seconds: float = 10.0
    auto_migrate: bool = True
    auto_seed: bool = True
    seed_file: str = ""  # "" → ./seed/seed.toml, else the repository's seed/seed.toml
    allow_unknown_processors: bool = False
    max_artifact_bytes: int = 50 * 1024 * 1024
    idempotency_hours: int = 24
    max_delay_ms: int = 30 * 24 * 3600 * 1000
    max_batch_items: int = 10_000
    retention_days: int = 0  # 0: finished jobs are kept forever
    retention_batch: int = 1000
    # The bootstrap admin token (INNOSYSTEM_ADMIN_TOKEN); a secret: kept out of repr() and
    # shown as "***" by describe().
    admin_token: str = field(default="", repr=False)
    config_file: str | None = field(default=None, compare=False)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def broker_kind(self) -> str:
        return "redis" if self.broker_url.startswith(("redis://", "rediss://")) else "memory"


@dataclass(frozen=True)
class _Field:
    name: str
    toml: tuple[str, str]  # (section, key)
    env: tuple[str, ...]  # first is the canonical INNOSYSTEM_* name, then aliases
    parse: Callable[[Any, str], Any]
    doc: str


def _int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def parse(value: Any, key: str) -> int:
        # bool is an int subclass and int(2.5) truncates: both are typos, not integers.
        if isinstance(value, bool | float):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
        if not lo <= number <= hi:
            raise ConfigError(f"{key}: {number} is out of range {lo}..{hi}")
        return number

    return parse


def _float(lo: float, hi: float) -> Callable[[Any, str], float]:
    def parse(value: Any, key: str) -> float:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
        if not lo <= number <= hi:
            raise ConfigError(f"{key}: {number} is out of range {lo}..{hi}")
        return number

    return parse


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{key}: expected true or false, got {value!r}")


def _str(value: Any, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string, got {value!r}")
    return value.strip()


def _choice(*choices: str, upper: bool = False) -> Callable[[Any, str], str]:
    def parse(value: Any, key: str) -> str:
        text = _str(value, key)
        text = text.upper() if upper else text.lower()
        if text not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
        return text

    return parse


def _database_url(value: Any, key: str) -> str:
    url = _str(value, key)
    if url == "":
        return url
    scheme = urlsplit(url).scheme
    if scheme == "postgresql":
        url = "postgres" + url[len("postgresql") :]
        scheme = "postgres"
    if scheme not in ("sqlite", "postgres", "asyncpg"):
        raise ConfigError(f"{key}: unsupported scheme {scheme!r} (use sqlite:// or postgres://)")
    return url


def _broker_url(value: Any, key: str) -> str:
    url = _str(value, key)
    scheme = urlsplit(url).scheme
    if scheme not in ("memory", "redis", "rediss"):
        raise ConfigError(f"{key}: unsupported scheme {scheme!r} (use memory:// or redis://)")
    return url


def _namespace(value: Any, key: str) -> str:
    text = _str(value, key)
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", text):
        raise ConfigError(f"{key}: {value!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return text


def _job_types(value: Any, key: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ConfigError(f"{key}: expected a list of processing logic ids, got {value!r}")
    result = tuple(str(item).strip() for item in items if str(item).strip())
    return tuple(sorted(set(result)))


def _admin_token(value: Any, key: str) -> str:
    # No message repeats the value: it is a secret.
    if not isinstance(value, str):
        raise ConfigError(f"{key}: expected a string")
    token = value.strip()
    if token and (not 32 <= len(token) <= 1024 or any(c.isspace() for c in token)):
        raise ConfigError(f"{key}: must be empty or 32..1024 characters without spaces")
    return token


FIELDS: tuple[_Field, ...] = (
    _Field(
        "data_dir",
        ("server", "data_dir"),
        ("INNOSYSTEM_DATA_DIR",),
        lambda v, k: Path(_str(v, k)),
        "SQLite file and artifacts live here",
    ),
    _Field(
        "database_url",
        ("database", "url"),
        ("INNOSYSTEM_DATABASE_URL", "DATABASE_URL"),
        _database_url,
        "sqlite://PATH or postgres://USER@HOST:PORT/DB",
    ),
    _Field(
        "database_pool_size",
        ("database", "pool_size"),
        ("INNOSYSTEM_DATABASE_POOL_SIZE",),
        _int(1, 1000),
        "PostgreSQL connections per process (the API and the workers share them)",
    ),
    _Field(
        "broker_url",
        ("broker", "url"),
        ("INNOSYSTEM_BROKER_URL", "REDIS_URL"),
        _broker_url,
        "memory:// (in-process) or redis://HOST:PORT/DB",
    ),
    _Field(
        "broker_namespace",
        ("broker", "namespace"),
        ("INNOSYSTEM_BROKER_NAMESPACE",),
        _namespace,
        "Redis key prefix; deployments sharing one Redis need different namespaces",
    ),
    _Field("host", ("server", "host"), ("INNOSYSTEM_HOST",), _str, "listen address"),
    _Field("port", ("server", "port"), ("INNOSYSTEM_PORT",), _int(0, 65535), "listen port"),
    _Field(
        "max_body_bytes",
        ("server", "max_body_bytes"),
        ("INNOSYSTEM_MAX_BODY_BYTES",),
        _int(1024, 1024**3),
        "larger request bodies get 413",
    ),
    _Field(
        "log_level",
        ("log", "level"),
        ("INNOSYSTEM_LOG_LEVEL",),
        _choice(*LOG_LEVELS, upper=True),
        "minimum level",
    ),
    _Field(
        "log_format",
        ("log", "format"),
        ("INNOSYSTEM_LOG_FORMAT",),
        _choice("text", "json"),
        "text or json (one object per line)",
    ),
    _Field(
        "runner_id",
        ("worker", "runner_id"),
        ("INNOSYSTEM_RUNNER_ID", "RUNNER_ID"),
        _str,
        "this process's runner id",
    ),
    _Field(
        "worker_threads",
        ("worker", "max_concurrent_jobs"),
        ("INNOSYSTEM_MAX_CONCURRENT_JOBS", "MAX_CONCURRENT_JOBS"),
        _int(1, 512),
        "jobs run at once by this process",
    ),
    _Field(
        "supported_job_types",
        ("worker", "supported_job_types"),
        ("INNOSYSTEM_SUPPORTED_JOB_TYPES", "SUPPORTED_JOB_TYPES"),
        _job_types,
        "logic ids this runner takes (empty: all installed)",
    ),
    _Field(
        "poll_interval_ms",
        ("worker", "poll_interval_ms"),
        ("INNOSYSTEM_POLL_INTERVAL_MS", "POLL_INTERVAL_MS"),
        _int(50, 3_600_000),
        "sweeper and heartbeat period",
    ),
    _Field(
        "lease_seconds",
        ("worker", "lease_seconds"),
        ("INNOSYSTEM_LEASE_SECONDS",),
        _int(2, 86_400),
        "a running job whose runner stops renewing is re-queued after this",
    ),
    _Field(
        "requeue_after_seconds",
        ("worker", "requeue_after_seconds"),
        ("INNOSYSTEM_REQUEUE_AFTER_SECONDS",),
        _int(1, 86_400),
        "a pending job not picked up this long after enqueue is sent again",
    ),
    _Field(
        "priority_aging_seconds",
        ("worker", "priority_aging_seconds"),
        ("INNOSYSTEM_PRIORITY_AGING_SECONDS",),
        _int(1, 86_400),
        "a due job waiting this long is re-sent one priority higher (starvation guard)",
    ),
    _Field(
        "cancel_grace_seconds",
        ("worker", "cancel_grace_seconds"),
        ("INNOSYSTEM_CANCEL_GRACE_SECONDS",),
        _float(0, 3600),
        "a running job asked to cancel is stopped by force after this long",
    ),
    _Field(
        "shutdown_timeout_seconds",
        ("worker", "shutdown_timeout_seconds"),
        ("INNOSYSTEM_SHUTDOWN_TIMEOUT_SECONDS",),
        _float(0.1, 3600),
        "graceful stop waits this long for running jobs",
    ),
    _Field(
        "auto_migrate",
        ("database", "auto_migrate"),
        ("INNOSYSTEM_AUTO_MIGRATE",),
        _bool,
        "serve/worker apply migrations at start",
    ),
    _Field(
        "auto_seed",
        ("database", "auto_seed"),
        ("INNOSYSTEM_AUTO_SEED",),
        _bool,
        "serve loads seed data at start",
    ),
    _Field(
        "seed_file", ("database", "seed_file"), ("INNOSYSTEM_SEED_FILE",), _str, "seed data file"
    ),
    _Field(
        "allow_unknown_processors",
        ("server", "allow_unknown_processors"),
        ("INNOSYSTEM_ALLOW_UNKNOWN_PROCESSORS",),
        _bool,
        "allow job types whose logic id no installed plugin serves",
    ),
    _Field(
        "max_artifact_bytes",
        ("artifacts", "max_bytes"),
        ("INNOSYSTEM_MAX_ARTIFACT_BYTES",),
        _int(1024, 10 * 1024**3),
        "largest upload (POST /artifacts) or processor output file",
    ),
    _Field(
        "max_delay_ms",
        ("api", "max_delay_ms"),
        ("INNOSYSTEM_MAX_DELAY_MS",),
        _int(1000, 366 * 24 * 3600 * 1000),
        "largest delay_ms a job may be submitted with",
    ),
    _Field(
        "max_batch_items",
        ("api", "max_batch_items"),
        ("INNOSYSTEM_MAX_BATCH_ITEMS",),
        _int(1, 1_000_000),
        "most input_data.items a Batch job may carry",
    ),
    _Field(
        "idempotency_hours",
        ("api", "idempotency_hours"),
        ("INNOSYSTEM_IDEMPOTENCY_HOURS",),
        _int(24, 24 * 90),
        "how long an Idempotency-Key and its first response are kept",
    ),
    _Field(
        "retention_days",
        ("retention", "days"),
        ("INNOSYSTEM_RETENTION_DAYS",),
        _int(0, 36_500),
        "finished jobs (and uploads) older than this many days are pruned; 0: kept forever",
    ),
    _Field(
        "retention_batch",
        ("retention", "batch"),
        ("INNOSYSTEM_RETENTION_BATCH",),
        _int(10, 100_000),
        "jobs deleted per retention transaction (one batch per sweeper pass)",
    ),
    _Field(
        "admin_token",
        ("auth", "admin_token"),
        ("INNOSYSTEM_ADMIN_TOKEN",),
        _admin_token,
        "bootstrap platform-admin API token (stored hashed; empty: none)",
    ),
)

_BY_NAME = {f.name: f for f in FIELDS}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"INNOSYSTEM_CONFIG: file {str(path)!r} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> Settings:
    """Merge file < env < overrides (CLI flags) and validate; raises ConfigError naming the key."""
    env = os.environ if env is None else env
    cwd = Path.cwd() if cwd is None else cwd
    values: dict[str, Any] = {}

    config_path: Path | None = None
    if env.get("INNOSYSTEM_CONFIG"):
        config_path = Path(env["INNOSYSTEM_CONFIG"])
    elif (cwd / "innosystem.toml").is_file():
        config_path = cwd / "innosystem.toml"

    if config_path is not None:
        document = _read_toml(config_path)
        known_sections = {f.toml[0] for f in FIELDS}
        for section, table in document.items():
            if section not in known_sections or not isinstance(table, dict):
                raise ConfigError(f"{config_path}: unknown section [{section}]")
            for key in table:
                if not any(f.toml == (section, key) for f in FIELDS):
                    raise ConfigError(f"{config_path}: unknown key {section}.{key}")
        for spec in FIELDS:
            section, key = spec.toml
            if key in document.get(section, {}):
                values[spec.name] = spec.parse(document[section][key], f"{section}.{key}")

    for spec in FIELDS:
        # The canonical INNOSYSTEM_* name wins over the seed's alias when both are set.
        for name in spec.env:
            if name in env and env[name] != "":
                values[spec.name] = spec.parse(env[name], name)
                break

    for name, value in (overrides or {}).items():
        if value is None:
            continue
        spec = _BY_NAME[name]
        values[name] = spec.parse(value, "--" + name.replace("_", "-"))

    settings = Settings(config_file=str(config_path) if config_path else None, **values)
    return _resolve_defaults(settings)


def _resolve_defaults(settings: Settings) -> Settings:
    if settings.lease_seconds * 1000 < 3 * settings.poll_interval_ms:
        # The heartbeat (every poll interval) renews leases; fewer than three renewals per lease
        # would let a healthy runner's jobs be taken away after one slow tick.
        raise ConfigError(
            f"worker.lease_seconds (INNOSYSTEM_LEASE_SECONDS): {settings.lease_seconds}s must be "
            f"at least three poll intervals ({3 * settings.poll_interval_ms} ms)"
        )
    changes: dict[str, Any] = {}
    if not settings.database_url:
        changes["database_url"] = f"sqlite://{(settings.data_dir / 'innosystem.sqlite3')}"
    if not settings.runner_id:
        changes["runner_id"] = f"{socket.gethostname()}-{os.getpid()}"
    return replace(settings, **changes) if changes else settings


def redacted_url(url: str) -> str:
    """A URL fit for logs: the password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


#: Settings whose value is a secret: never logged, never shown (describe() masks them).
SECRET_FIELDS = frozenset({"admin_token"})


def describe(settings: Settings) -> dict[str, Any]:
    """Settings as a dict safe to log (no secrets)."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if f.name in ("database_url", "broker_url"):
            value = redacted_url(value)
        elif f.name in SECRET_FIELDS:
            value = "***" if value else ""
        out[f.name] = str(value) if isinstance(value, Path) else value
    return out
