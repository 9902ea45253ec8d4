"""Configuration: innosystem.toml < environment (INNOSYSTEM_* and the seed's aliases) < CLI flags,
validated once into a frozen Settings; every bad value names its key."""

from __future__ import annotations

import dataclasses
import os
import socket
from pathlib import Path

import pytest
from helpers import clean_env, run_cli

from innosystem.config import Settings, describe, load_settings, redacted_url
from innosystem.errors import ConfigError

SEED_ALIASES = (
    "DATABASE_URL",
    "REDIS_URL",
    "RUNNER_ID",
    "POLL_INTERVAL_MS",
    "SUPPORTED_JOB_TYPES",
    "MAX_CONCURRENT_JOBS",
)


def write_toml(directory: Path, text: str, name: str = "innosystem.toml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


# --- defaults -----------------------------------------------------------------------------------
def test_defaults_without_file_or_env(tmp_path: Path):
    settings = load_settings(env={}, cwd=tmp_path)

    assert settings.config_file is None
    assert settings.host == "127.0.0.1"
    assert settings.port == 8080
    assert settings.broker_url == "memory://"
    assert settings.broker_kind == "memory"
    assert settings.data_dir == Path("var")
    assert settings.database_url == "sqlite://var/innosystem.sqlite3"
    assert settings.is_sqlite
    assert settings.max_body_bytes == 1024 * 1024
    assert settings.log_format == "text"
    assert settings.log_level == "INFO"
    assert settings.supported_job_types == ()
    assert settings.allow_unknown_processors is False
    assert settings.runner_id == f"{socket.gethostname()}-{os.getpid()}"


def test_default_database_is_sqlite_under_the_data_dir(tmp_path: Path):
    data_dir = tmp_path / "data"
    settings = load_settings(env={"INNOSYSTEM_DATA_DIR": str(data_dir)}, cwd=tmp_path)
    assert settings.data_dir == data_dir
    assert settings.database_url == f"sqlite://{data_dir}/innosystem.sqlite3"


def test_settings_are_frozen(tmp_path: Path):
    settings = load_settings(env={}, cwd=tmp_path)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.port = 1  # type: ignore[misc]


def test_an_empty_env_value_counts_as_unset(tmp_path: Path):
    write_toml(tmp_path, "[server]\nport = 1111\n")
    settings = load_settings(env={"INNOSYSTEM_PORT": ""}, cwd=tmp_path)
    assert settings.port == 1111


# --- precedence ---------------------------------------------------------------------------------
def test_file_then_env_then_overrides(tmp_path: Path):
    path = write_toml(
        tmp_path,
        '[server]\nport = 1111\nhost = "10.0.0.1"\n[log]\nformat = "json"\nlevel = "debug"\n',
    )
    env = {"INNOSYSTEM_PORT": "2222", "INNOSYSTEM_LOG_LEVEL": "warning"}

    from_file = load_settings(env={}, cwd=tmp_path)
    assert from_file.config_file == str(path)
    assert (from_file.port, from_file.host, from_file.log_format, from_file.log_level) == (
        1111,
        "10.0.0.1",
        "json",
        "DEBUG",
    )

    from_env = load_settings(env=env, cwd=tmp_path)
    assert (from_env.port, from_env.host, from_env.log_level) == (2222, "10.0.0.1", "WARNING")
    assert from_env.log_format == "json"  # untouched by env: the file's value stays

    # CLI flags arrive as strings from argparse; None means "flag not given".
    from_flags = load_settings(
        {"port": "3333", "log_level": None, "host": "0.0.0.0"}, env=env, cwd=tmp_path
    )
    assert (from_flags.port, from_flags.host, from_flags.log_level) == (3333, "0.0.0.0", "WARNING")


def test_innosystem_config_names_the_file_and_cwd_file_is_ignored(tmp_path: Path):
    write_toml(tmp_path, "[server]\nport = 1111\n")
    other = write_toml(tmp_path, "[server]\nport = 4444\n", name="elsewhere.toml")
    settings = load_settings(env={"INNOSYSTEM_CONFIG": str(other)}, cwd=tmp_path)
    assert settings.port == 4444
    assert settings.config_file == str(other)


def test_every_section_of_the_file_is_read(tmp_path: Path):
    write_toml(
        tmp_path,
        """
[server]
data_dir = "/srv/inno"
max_body_bytes = 2048
allow_unknown_processors = true
[database]
url = "postgresql://app:pw@db:5432/inno"
auto_migrate = false
auto_seed = false
[broker]
url = "redis://cache:6379/2"
[worker]
runner_id = "file-runner"
max_concurrent_jobs = 3
supported_job_types = ["b", "a", "a"]
poll_interval_ms = 750
lease_seconds = 12
shutdown_timeout_seconds = 2.5
""",
    )
    s = load_settings(env={}, cwd=tmp_path)
    assert s.data_dir == Path("/srv/inno")
    assert s.max_body_bytes == 2048
    assert s.allow_unknown_processors is True
    assert s.database_url == "postgres://app:pw@db:5432/inno"
    assert not s.is_sqlite
    assert (s.auto_migrate, s.auto_seed) == (False, False)
    assert s.broker_url == "redis://cache:6379/2"
    assert s.broker_kind == "redis"
    assert s.runner_id == "file-runner"
    assert s.worker_threads == 3
    assert s.supported_job_types == ("a", "b")
    assert s.poll_interval_ms == 750
    assert s.lease_seconds == 12
    assert s.shutdown_timeout_seconds == 2.5


# --- the seed's aliases -------------------------------------------------------------------------
def test_seed_aliases_are_honoured(tmp_path: Path):
    env = {
        "DATABASE_URL": "postgres://u@db:5432/seed",
        "REDIS_URL": "redis://cache:6379/1",
        "RUNNER_ID": "runner-7",
        "POLL_INTERVAL_MS": "500",
        "SUPPORTED_JOB_TYPES": "text-analysis-v1, image-recog-v2,,text-analysis-v1",
        "MAX_CONCURRENT_JOBS": "4",
    }
    s = load_settings(env=env, cwd=tmp_path)
    assert s.database_url == "postgres://u@db:5432/seed"
    assert s.broker_url == "redis://cache:6379/1"
    assert s.runner_id == "runner-7"
    assert s.poll_interval_ms == 500
    assert s.supported_job_types == ("image-recog-v2", "text-analysis-v1")
    assert s.worker_threads == 4


@pytest.mark.parametrize(
    ("canonical", "alias", "attr", "canonical_value", "alias_value", "expected"),
    [
        (
            "INNOSYSTEM_DATABASE_URL",
            "DATABASE_URL",
            "database_url",
            "postgres://a@h/one",
            "postgres://b@h/two",
            "postgres://a@h/one",
        ),
        (
            "INNOSYSTEM_BROKER_URL",
            "REDIS_URL",
            "broker_url",
            "redis://h:6379/1",
            "redis://h:6379/2",
            "redis://h:6379/1",
        ),
        ("INNOSYSTEM_RUNNER_ID", "RUNNER_ID", "runner_id", "canon", "alias", "canon"),
        ("INNOSYSTEM_POLL_INTERVAL_MS", "POLL_INTERVAL_MS", "poll_interval_ms", "100", "900", 100),
        (
            "INNOSYSTEM_SUPPORTED_JOB_TYPES",
            "SUPPORTED_JOB_TYPES",
            "supported_job_types",
            "x",
            "y",
            ("x",),
        ),
        ("INNOSYSTEM_MAX_CONCURRENT_JOBS", "MAX_CONCURRENT_JOBS", "worker_threads", "2", "9", 2),
    ],
)
def test_canonical_name_wins_over_alias(
    tmp_path, canonical, alias, attr, canonical_value, alias_value, expected
):
    # Both orders of insertion: the winner must not depend on dict order.
    for env in (
        {canonical: canonical_value, alias: alias_value},
        {alias: alias_value, canonical: canonical_value},
    ):
        assert getattr(load_settings(env=env, cwd=tmp_path), attr) == expected


def test_alias_beats_the_file(tmp_path: Path):
    write_toml(tmp_path, '[worker]\nrunner_id = "from-file"\nmax_concurrent_jobs = 2\n')
    s = load_settings(env={"RUNNER_ID": "from-alias", "MAX_CONCURRENT_JOBS": "6"}, cwd=tmp_path)
    assert (s.runner_id, s.worker_threads) == ("from-alias", 6)


@pytest.mark.parametrize(
    "source",
    ["env", "alias", "file", "flag"],
)
def test_postgresql_scheme_is_normalised(tmp_path: Path, source: str):
    url = "postgresql://user:pw@db.example:5432/inno?maxsize=20"
    env: dict[str, str] = {}
    overrides: dict[str, str] = {}
    if source == "env":
        env["INNOSYSTEM_DATABASE_URL"] = url
    elif source == "alias":
        env["DATABASE_URL"] = url
    elif source == "file":
        write_toml(tmp_path, f'[database]\nurl = "{url}"\n')
    else:
        overrides["database_url"] = url
    s = load_settings(overrides, env=env, cwd=tmp_path)
    assert s.database_url == "postgres://user:pw@db.example:5432/inno?maxsize=20"


# --- invalid values name their key --------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"INNOSYSTEM_PORT": "99999"}, "INNOSYSTEM_PORT"),
        ({"INNOSYSTEM_PORT": "-1"}, "INNOSYSTEM_PORT"),
        ({"INNOSYSTEM_PORT": "eighty"}, "INNOSYSTEM_PORT"),
        ({"INNOSYSTEM_LOG_FORMAT": "xml"}, "INNOSYSTEM_LOG_FORMAT"),
        ({"INNOSYSTEM_LOG_LEVEL": "LOUD"}, "INNOSYSTEM_LOG_LEVEL"),
        ({"INNOSYSTEM_BROKER_URL": "amqp://rabbit:5672/"}, "INNOSYSTEM_BROKER_URL"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL"),
        ({"INNOSYSTEM_DATABASE_URL": "mysql://db/inno"}, "INNOSYSTEM_DATABASE_URL"),
        ({"DATABASE_URL": "mysql://db/inno"}, "DATABASE_URL"),
        ({"MAX_CONCURRENT_JOBS": "0"}, "MAX_CONCURRENT_JOBS"),
        ({"POLL_INTERVAL_MS": "fast"}, "POLL_INTERVAL_MS"),
        ({"INNOSYSTEM_AUTO_MIGRATE": "maybe"}, "INNOSYSTEM_AUTO_MIGRATE"),
        ({"INNOSYSTEM_SHUTDOWN_TIMEOUT_SECONDS": "soon"}, "INNOSYSTEM_SHUTDOWN_TIMEOUT_SECONDS"),
        ({"INNOSYSTEM_MAX_BODY_BYTES": "10"}, "INNOSYSTEM_MAX_BODY_BYTES"),
    ],
)
def test_invalid_env_value_names_the_key(tmp_path: Path, env: dict[str, str], key: str):
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, cwd=tmp_path)
    assert key in str(info.value)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[server]\nport = "eighty"\n', "server.port"),
        ("[server]\nport = true\n", "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[log]\nformat = "xml"\n', "log.format"),
        ('[broker]\nurl = "amqp://rabbit/"\n', "broker.url"),
        ("[server]\ncolour = 1\n", "server.colour"),
        ("[gui]\ntheme = 1\n", "[gui]"),
        ("port = 8080\n", "[port]"),
        ("[worker]\nsupported_job_types = 5\n", "worker.supported_job_types"),
        ("[database]\nauto_seed = 3\n", "database.auto_seed"),
        # A fractional number for an integer key is a mistake, not something to truncate.
        ("[worker]\nmax_concurrent_jobs = 2.5\n", "worker.max_concurrent_jobs"),
        # A boolean is not a number of seconds.
        ("[worker]\nshutdown_timeout_seconds = true\n", "worker.shutdown_timeout_seconds"),
    ],
)
def test_invalid_file_value_names_the_key(tmp_path: Path, text: str, key: str):
    path = write_toml(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, cwd=tmp_path)
    assert key in str(info.value)
    if "[" in key or key.endswith("colour"):
        assert str(path) in str(info.value)


def test_invalid_toml_syntax_names_the_file(tmp_path: Path):
    path = write_toml(tmp_path, "[server\nport = \n")
    with pytest.raises(ConfigError) as info:
        load_settings(env={}, cwd=tmp_path)
    assert str(path) in str(info.value)
    assert "invalid TOML" in str(info.value)


def test_innosystem_config_pointing_nowhere(tmp_path: Path):
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_settings(env={"INNOSYSTEM_CONFIG": str(missing)}, cwd=tmp_path)
    assert "INNOSYSTEM_CONFIG" in str(info.value)
    assert str(missing) in str(info.value)


def test_invalid_flag_names_the_flag(tmp_path: Path):
    with pytest.raises(ConfigError) as info:
        load_settings({"port": "99999"}, env={}, cwd=tmp_path)
    assert "--port" in str(info.value)
    with pytest.raises(ConfigError) as info:
        load_settings({"log_format": "xml"}, env={}, cwd=tmp_path)
    assert "--log-format" in str(info.value)


# --- secrets ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgres://app:s3cret@db:5432/inno", "postgres://app:***@db:5432/inno"),
        ("redis://:s3cret@cache:6379/0", "redis://:***@cache:6379/0"),
        ("postgres://app@db:5432/inno", "postgres://app@db:5432/inno"),
        ("sqlite://var/innosystem.sqlite3", "sqlite://var/innosystem.sqlite3"),
        ("memory://", "memory://"),
    ],
)
def test_redacted_url_hides_passwords(url: str, expected: str):
    assert redacted_url(url) == expected


def test_describe_never_shows_a_password(tmp_path: Path):
    s = load_settings(
        env={
            "INNOSYSTEM_DATABASE_URL": "postgres://app:topsecret@db/inno",
            "INNOSYSTEM_BROKER_URL": "redis://:alsosecret@cache:6379/0",
        },
        cwd=tmp_path,
    )
    text = repr(describe(s))
    assert "topsecret" not in text
    assert "alsosecret" not in text
    assert describe(s)["database_url"] == "postgres://app:***@db/inno"


def test_settings_defaults_match_the_documented_ones():
    s = Settings()
    assert (s.host, s.port, s.broker_url) == ("127.0.0.1", 8080, "memory://")


# --- the CLI stops with one clear line ----------------------------------------------------------
def test_cli_bad_port_exits_2_with_one_line(tmp_path: Path):
    env = clean_env(drop=SEED_ALIASES, INNOSYSTEM_PORT="99999")
    result = run_cli("serve", cwd=tmp_path, env=env, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "INNOSYSTEM_PORT" in lines[0]
    assert "Traceback" not in result.stderr
    # It stopped before doing anything: no database was created in the working directory.
    assert not (tmp_path / "var").exists()


def test_cli_bad_file_key_exits_2_with_one_line(tmp_path: Path):
    write_toml(tmp_path, '[log]\nformat = "xml"\n')
    result = run_cli("migrate", cwd=tmp_path, env=clean_env(drop=SEED_ALIASES), timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "log.format" in lines[0]


def test_lease_must_cover_three_poll_intervals(tmp_path: Path):
    env = {"INNOSYSTEM_LEASE_SECONDS": "2", "INNOSYSTEM_POLL_INTERVAL_MS": "1000"}
    with pytest.raises(ConfigError) as info:
        load_settings(env=env, cwd=tmp_path)
    assert "lease_seconds" in str(info.value)
    ok = load_settings(env={**env, "INNOSYSTEM_POLL_INTERVAL_MS": "500"}, cwd=tmp_path)
    assert (ok.lease_seconds, ok.poll_interval_ms) == (2, 500)
