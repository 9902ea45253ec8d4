"""``innosystem users ...`` and ``innosystem tokens ...`` as subprocesses on a fresh database of
the configured backend, and what they leave in it: no password and no token in plain text."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import pytest
from helpers import Databases, clean_env, db_query, run_cli

DEMO_RESELLER = "00000000-0000-4000-8000-000000000001"
DEMO_CUSTOMER = "00000000-0000-4000-8000-000000000002"
CANARY = "canary-Pa55word-7f3a9c1e-do-not-store"
TOKEN = re.compile(r"inno_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")
AUTH_TABLES = ("users", "api_tokens", "audit_events")


@pytest.fixture
def db_url(databases: Databases) -> str:
    return databases.new_url()


def env_for(url: str, **extra: str) -> dict[str, str]:
    return clean_env(drop=("DATABASE_URL",), INNOSYSTEM_DATABASE_URL=url, **extra)


def cli(
    url: str, cwd: Path, *args: str, ok: bool = True, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    result = run_cli(*args, cwd=cwd, env=env_for(url, **env), timeout=120, input=input)
    if ok:
        assert result.returncode == 0, f"innosystem {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result


def dump(url: str) -> str:
    """Every value of every row of the auth tables, as one text."""
    return "\n".join(
        repr(row) for table in AUTH_TABLES for row in db_query(url, f"SELECT * FROM {table}")
    )


def test_users_and_tokens_commands(db_url: str, tmp_path: Path) -> None:
    cli(db_url, tmp_path, "seed")  # migrates, and makes the demo reseller and customer
    assert {t: db_query(db_url, f"SELECT COUNT(*) AS n FROM {t}")[0]["n"] for t in AUTH_TABLES} == {
        t: 0 for t in AUTH_TABLES
    }

    # users create: role/tenant rules, password from stdin only.
    out = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "Ops@Example.com",
        "--name",
        "Ops",
        "--role",
        "platform_admin",
    ).stdout
    assert "ops@example.com" in out and "platform_admin" in out
    member = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "member@example.com",
        "--name",
        "Member",
        "--role",
        "customer_member",
        "--customer-id",
        DEMO_CUSTOMER,
        "--password-stdin",
        input=CANARY + "\n",
    )
    assert CANARY not in member.stdout + member.stderr
    cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "reseller@example.com",
        "--name",
        "R",
        "--role",
        "reseller_admin",
        "--reseller-id",
        DEMO_RESELLER,
    )
    refused = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "x@example.com",
        "--name",
        "X",
        "--role",
        "customer_admin",
        ok=False,
    )
    assert refused.returncode == 1
    assert "customer_id: is required for role customer_admin" in refused.stderr
    refused = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "MEMBER@example.com",
        "--name",
        "Dup",
        "--role",
        "platform_admin",
        ok=False,
    )
    assert refused.returncode == 1 and "already exists" in refused.stderr
    refused = cli(
        db_url,
        tmp_path,
        "users",
        "create",
        "--email",
        "pw@example.com",
        "--name",
        "PW",
        "--role",
        "platform_admin",
        "--password-stdin",
        input="short\n",
        ok=False,
    )
    assert refused.returncode == 1 and "password: must be 12..1024" in refused.stderr

    users = json.loads(cli(db_url, tmp_path, "users", "list", "--json").stdout)
    by_email = {u["email"]: u for u in users}
    assert set(by_email) == {"ops@example.com", "member@example.com", "reseller@example.com"}
    assert by_email["member@example.com"]["has_password"] is True
    assert by_email["member@example.com"]["customer_id"] == DEMO_CUSTOMER
    assert by_email["ops@example.com"]["has_password"] is False
    assert all("password_hash" not in u for u in users)
    table = cli(db_url, tmp_path, "users", "list").stdout
    assert table.splitlines()[0].split()[:3] == ["ID", "EMAIL", "ROLE"]
    assert "$argon2" not in table

    # tokens create: the token alone on stdout, once.
    created = cli(
        db_url,
        tmp_path,
        "tokens",
        "create",
        "--user-email",
        "OPS@example.com",
        "--name",
        "ci",
        "--expires-days",
        "30",
    )
    full = created.stdout.strip()
    match = TOKEN.fullmatch(full)
    assert match, created.stdout
    prefix, secret = match.groups()
    assert full not in created.stderr and prefix in created.stderr
    member_token = cli(
        db_url,
        tmp_path,
        "tokens",
        "create",
        "--user-email",
        "member@example.com",
        "--name",
        "laptop",
    ).stdout.strip()
    assert TOKEN.fullmatch(member_token)
    refused = cli(
        db_url,
        tmp_path,
        "tokens",
        "create",
        "--user-email",
        "nobody@example.com",
        "--name",
        "x",
        ok=False,
    )
    assert refused.returncode == 1 and "not found" in refused.stderr

    listed = cli(db_url, tmp_path, "tokens", "list").stdout
    assert prefix in listed and member_token[5:17] in listed
    assert secret not in listed and full not in listed
    mine = json.loads(
        cli(db_url, tmp_path, "tokens", "list", "--user-email", "ops@example.com", "--json").stdout
    )
    assert [(t["prefix"], t["name"], t["status"]) for t in mine] == [(prefix, "ci", "active")]
    assert mine[0]["scopes"] == ["*"] and mine[0]["expires_at"]
    assert "secret_hash" not in mine[0] and secret not in json.dumps(mine)

    # tokens revoke, by prefix and by id.
    cli(db_url, tmp_path, "tokens", "revoke", prefix)
    again = cli(db_url, tmp_path, "tokens", "revoke", mine[0]["id"])
    assert "revoked" in again.stdout
    revoked = json.loads(cli(db_url, tmp_path, "tokens", "list", "--json").stdout)
    assert {t["prefix"]: t["status"] for t in revoked} == {
        prefix: "revoked",
        member_token[5:17]: "active",
    }
    refused = cli(db_url, tmp_path, "tokens", "revoke", "000000000000", ok=False)
    assert refused.returncode == 1

    # What the database holds: hashes, never the secrets.
    text = dump(db_url)
    for secret_text in (CANARY, full, secret, member_token, member_token[18:]):
        assert secret_text not in text
    (member_row,) = db_query(
        db_url, "SELECT password_hash FROM users WHERE email = {}", ["member@example.com"]
    )
    assert member_row["password_hash"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    (token_row,) = db_query(
        db_url, "SELECT secret_hash, revoked_at FROM api_tokens WHERE prefix = {}", [prefix]
    )
    assert token_row["secret_hash"] == hashlib.sha256(secret.encode()).hexdigest()
    assert token_row["revoked_at"] is not None

    actions = [
        row["action"] for row in db_query(db_url, "SELECT action FROM audit_events ORDER BY id")
    ]
    assert actions == [
        "user_created",
        "user_created",
        "user_created",
        "token_created",
        "token_created",
        "token_revoked",
    ]
    events = db_query(db_url, "SELECT details, customer_id, reseller_id FROM audit_events")
    assert all(
        '"via":"cli"' in str(e["details"]).replace(" ", "").replace("'", '"') for e in events
    )
    member_events = [e for e in events if e["customer_id"] is not None]
    assert member_events and all(str(e["reseller_id"]) == DEMO_RESELLER for e in member_events)


def test_the_admin_token_setting_is_never_logged(db_url: str, tmp_path: Path) -> None:
    token = "inno_0123456789ab_" + "L" * 43
    result = cli(
        db_url,
        tmp_path,
        "users",
        "list",
        INNOSYSTEM_ADMIN_TOKEN=token,
        INNOSYSTEM_LOG_LEVEL="DEBUG",
    )
    assert "admin_token" in result.stderr  # the settings line was logged ...
    assert token not in result.stdout + result.stderr  # ... without the token
    bad = cli(db_url, tmp_path, "users", "list", INNOSYSTEM_ADMIN_TOKEN="short-secret", ok=False)
    assert bad.returncode == 2 and "INNOSYSTEM_ADMIN_TOKEN" in bad.stderr
    assert "short-secret" not in bad.stderr


def test_a_tenant_with_users_is_archived_not_deleted(make_server, tmp_path: Path) -> None:
    """Users are history: a customer (or reseller) with a user but nothing else is archived by
    DELETE, never left with a dangling user (nor refused with a 500)."""
    import httpx
    from helpers import running

    srv = make_server().start()
    with running(srv), httpx.Client(base_url=srv.url, timeout=30) as api:
        reseller = api.post("/resellers", json={"name": "R with a user"}).json()
        customer = api.post(
            "/customers",
            json={"reseller_id": reseller["id"], "name": "C", "email": "c-with-user@example.com"},
        ).json()
        for role, flag, tenant in (
            ("customer_member", "--customer-id", customer["id"]),
            ("reseller_admin", "--reseller-id", reseller["id"]),
        ):
            cli(
                srv.database_url,
                tmp_path,
                "users",
                "create",
                "--email",
                f"{role}@example.com",
                "--name",
                role,
                "--role",
                role,
                flag,
                tenant,
            )
        gone = api.delete(f"/customers/{customer['id']}")
        assert gone.status_code == 200 and gone.json()["status"] == "archived", gone.text
        other = api.post("/resellers", json={"name": "R2"}).json()
        cli(
            srv.database_url,
            tmp_path,
            "users",
            "create",
            "--email",
            "r2-admin@example.com",
            "--name",
            "R2 admin",
            "--role",
            "reseller_admin",
            "--reseller-id",
            other["id"],
        )
        archived = api.delete(f"/resellers/{other['id']}")
        assert archived.status_code == 200 and archived.json()["status"] == "archived"
