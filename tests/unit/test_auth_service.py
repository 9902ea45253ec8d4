"""``services.auth``: passwords, API tokens, role scopes, users, bootstrap and the audit trail,
called directly inside an in-process app (``innosystem.testing``) on a fresh database of the
configured backend. Nothing here goes through HTTP: the API does not ask for tokens yet."""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher

from innosystem.config import describe, load_settings
from innosystem.errors import ConfigError, Conflict, NotFound, ValidationFailed
from innosystem.models import ApiToken, AuditEvent, User
from innosystem.services import auth, tenants
from innosystem.services.runners import utcnow

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r"inno_([0-9a-f]{12})_([A-Za-z0-9_-]{43})")


@pytest.fixture
def innosystem_env(innosystem_env: dict[str, str], databases: Any) -> dict[str, str]:
    return {**innosystem_env, "INNOSYSTEM_DATABASE_URL": databases.new_url()}


@pytest.fixture
async def tenant(innosystem_app: Any) -> dict[str, Any]:
    reseller = await tenants.create_reseller("Auth reseller")
    customer = await tenants.create_customer(
        reseller.id, "Auth customer", f"auth-{uuid.uuid4().hex[:8]}@example.com"
    )
    return {"reseller": reseller, "customer": customer}


def field_of(exc: pytest.ExceptionInfo[Any]) -> str:
    return exc.value.details[0]["field"]


# --- pure parts ---------------------------------------------------------------------------------
def test_scopes_per_role() -> None:
    assert auth.scopes_for("platform_admin") == ["*"]
    member = auth.scopes_for("customer_member")
    assert "jobs:write" in member and "users:write" not in member
    assert set(auth.SCOPES_BY_ROLE) == set(auth.ROLES)
    with pytest.raises(ValidationFailed):
        auth.scopes_for("root")
    assert auth.has_scope(["*"], "wallets:write")
    assert auth.has_scope(["jobs:*"], "jobs:write")
    assert auth.has_scope(["jobs:read"], "jobs:read")
    assert not auth.has_scope(["jobs:read"], "jobs:write")
    assert not auth.has_scope(member, "wallets:write")


def test_password_rules_and_argon2id_parameters() -> None:
    for bad in ("x" * 11, "x" * 1025, "", None):
        with pytest.raises(ValidationFailed) as exc:
            auth.hash_password(bad)  # type: ignore[arg-type]
        assert field_of(exc) == "password"
    hashed = auth.hash_password("x" * 12)
    assert hashed.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert auth.hash_password("x" * 1024) != auth.hash_password("x" * 1024)  # salted


def test_token_forms() -> None:
    token = f"inno_{'a1' * 6}_{'S' * 43}"
    assert auth.parse_token(token) == ("a1" * 6, hashlib.sha256(b"S" * 43).hexdigest())
    opaque = "operator-chose-this-string-of-40-chars!!"
    digest = hashlib.sha256(opaque.encode()).hexdigest()
    assert auth.parse_token(opaque) == (digest[:12], digest)
    for bad in ("", "inno_", "x" * 31, "inno_abc_def", "with space " * 4, "y" * 1025):
        assert auth.parse_token(bad) is None


def test_audit_details_are_scrubbed() -> None:
    details = {
        "password": "p",
        "new_password": "p",
        "api_token": "t",
        "Secret": "s",
        "token_prefix": "abc",
        "prefix": "abc",
        "note": "pasted inno_0123456789ab_SECRETsecretSECRET by mistake",
        "nested": [{"client_secret": "x", "ok": 1}],
    }
    assert auth.scrub_details(details) == {
        "token_prefix": "abc",
        "prefix": "abc",
        "note": "pasted inno_[redacted] by mistake",
        "nested": [{"ok": 1}],
    }


def test_admin_token_setting_is_never_shown() -> None:
    token = "inno_0123456789ab_" + "Z" * 43
    settings = load_settings(env={"INNOSYSTEM_ADMIN_TOKEN": token})
    assert settings.admin_token == token
    assert describe(settings)["admin_token"] == "***"
    assert token not in repr(settings) and token not in repr(describe(settings))
    assert describe(load_settings(env={}))["admin_token"] == ""
    with pytest.raises(ConfigError) as exc:
        load_settings(env={"INNOSYSTEM_ADMIN_TOKEN": "too-short-secret"})
    assert "INNOSYSTEM_ADMIN_TOKEN" in str(exc.value) and "too-short-secret" not in str(exc.value)


# --- passwords ----------------------------------------------------------------------------------
async def test_password_verify_login_and_rehash(innosystem_app: Any, monkeypatch: Any) -> None:
    user = await auth.create_user("Pat@Example.com", "Pat", "platform_admin", password=PASSWORD)
    assert user.email == "pat@example.com"
    assert user.password_hash and user.password_hash.startswith("$argon2id$")
    assert await auth.verify_password(user, PASSWORD)
    assert not await auth.verify_password(user, PASSWORD + "!")
    assert not await auth.verify_password(user, "x" * 5000)
    assert not await auth.verify_password(None, PASSWORD)

    assert (await auth.login("PAT@example.com", PASSWORD, address="10.0.0.1")).id == user.id
    assert await auth.login("pat@example.com", "wrong password!") is None
    assert await auth.login("nobody@example.com", PASSWORD) is None
    assert await auth.login("not an email", PASSWORD) is None
    events = await AuditEvent.filter(action__in=["login", "login_failed"]).order_by("id")
    assert [(e.action, e.details.get("reason")) for e in events] == [
        ("login", None),
        ("login_failed", "bad_password"),
        ("login_failed", "unknown_email"),
        ("login_failed", "unknown_email"),
    ]
    assert events[0].address == "10.0.0.1" and events[0].actor_user_id == user.id
    assert events[3].details["email"] is None  # not a valid email: not kept

    # Weaker parameters than today's (as if the platform raised them): re-hashed on login.
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    monkeypatch.setattr(auth, "HASHER", weak)
    old = await auth.create_user("old@example.com", "Old", "platform_admin", password=PASSWORD)
    assert old.password_hash and "m=8192,t=1" in old.password_hash
    monkeypatch.undo()
    assert not await auth.verify_password(old, "not the password")
    assert "m=8192,t=1" in (await User.get(id=old.id)).password_hash  # not on a failure
    assert await auth.verify_password(old, PASSWORD)
    stored = (await User.get(id=old.id)).password_hash
    assert stored.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await auth.verify_password(await User.get(id=old.id), PASSWORD)


async def test_unknown_users_cost_a_real_verification(innosystem_app: Any, monkeypatch) -> None:
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str, password: str) -> bool:
            calls.append(hash)
            return super().verify(hash, password)

    monkeypatch.setattr(auth, "HASHER", Counting(time_cost=1, memory_cost=8192, parallelism=1))
    token_only = await auth.create_user("t@example.com", "T", "platform_admin")
    assert not await auth.verify_password(None, PASSWORD)
    assert not await auth.verify_password(token_only, PASSWORD)
    assert await auth.login("t@example.com", PASSWORD) is None
    assert len(calls) == 3 and all(h.startswith("$argon2id$") for h in calls)


async def test_disabled_users_cannot_log_in(innosystem_app: Any) -> None:
    await auth.create_user("a@example.com", "A", "platform_admin", password=PASSWORD)
    user = await auth.create_user("b@example.com", "B", "platform_admin", password=PASSWORD)
    await auth.disable_user(user.id)
    assert await auth.login("b@example.com", PASSWORD) is None
    failed = await AuditEvent.filter(action="login_failed").first()
    assert failed.details["reason"] == "user_disabled"
    await auth.enable_user(user.id)
    assert await auth.login("b@example.com", PASSWORD) is not None


# --- tokens -------------------------------------------------------------------------------------
async def test_token_lifecycle(innosystem_app: Any) -> None:
    user = await auth.create_user("ci@example.com", "CI", "platform_admin")
    token, full = await auth.create_token(user, "ci")
    match = TOKEN.fullmatch(full)
    assert match and match[1] == token.prefix
    assert token.secret_hash == hashlib.sha256(match[2].encode()).hexdigest()
    assert token.scopes == ["*"] and token.last_used_at is None

    found = await auth.authenticate_token(full)
    assert found is not None
    assert (found[0].id, found[1].id) == (user.id, token.id)
    first_use = (await ApiToken.get(id=token.id)).last_used_at
    assert first_use is not None

    # last_used_at is written at most once a minute.
    assert await auth.authenticate_token(full)
    assert (await ApiToken.get(id=token.id)).last_used_at == first_use
    await ApiToken.filter(id=token.id).update(last_used_at=utcnow() - timedelta(minutes=2))
    assert await auth.authenticate_token(full)
    assert (await ApiToken.get(id=token.id)).last_used_at > first_use

    # Right prefix, wrong secret; malformed strings.
    wrong = f"inno_{token.prefix}_{'A' * 43}"
    assert await auth.authenticate_token(wrong) is None
    for bad in (
        None,
        "",
        "inno_",
        f"inno_{token.prefix}",
        f"inno_{token.prefix}_short",
        "x" * 5000,
    ):
        assert await auth.authenticate_token(bad) is None
    assert await auth.authenticate_token(full.upper()) is None
    assert await auth.authenticate_token(full + "x") is None

    # A disabled user's tokens stop working, and work again when it is enabled.
    other = await auth.create_user("keep@example.com", "Keep", "platform_admin")
    await auth.disable_user(user.id)
    assert await auth.authenticate_token(full) is None
    await auth.enable_user(user.id)
    assert await auth.authenticate_token(full) is not None

    # Revoked for good; revoking again changes nothing.
    revoked = await auth.revoke_token(token.id)
    assert revoked.revoked_at is not None
    assert await auth.authenticate_token(full) is None
    again = await auth.revoke_token(token.id)
    assert again.revoked_at == revoked.revoked_at
    assert await AuditEvent.filter(action="token_revoked").count() == 1
    with pytest.raises(NotFound):
        await auth.revoke_token(uuid.uuid4())
    assert (await auth.find_token(token.prefix)).id == token.id
    assert (await auth.find_token(str(token.id))).id == token.id
    assert (await auth.find_token(full)).id == token.id

    # Expiry.
    soon, soon_full = await auth.create_token(other, "soon", utcnow() + timedelta(hours=1))
    assert await auth.authenticate_token(soon_full) is not None
    await ApiToken.filter(id=soon.id).update(expires_at=utcnow() - timedelta(seconds=1))
    assert await auth.authenticate_token(soon_full) is None
    with pytest.raises(ValidationFailed) as exc:
        await auth.create_token(other, "past", utcnow() - timedelta(seconds=1))
    assert field_of(exc) == "expires_at"
    with pytest.raises(ValidationFailed) as exc:
        await auth.create_token(other, " ")
    assert field_of(exc) == "name"
    await auth.disable_user(user.id)
    with pytest.raises(Conflict):
        await auth.create_token(user, "disabled")


async def test_prefix_collision_draws_again(innosystem_app: Any, monkeypatch: Any) -> None:
    user = await auth.create_user("c@example.com", "C", "platform_admin")
    first, _ = await auth.create_token(user, "one")
    draws = iter([first.prefix, first.prefix, "0123456789ab"])
    monkeypatch.setattr(auth, "_new_prefix", lambda: next(draws))
    second, full = await auth.create_token(user, "two")
    assert second.prefix == "0123456789ab" and full.startswith("inno_0123456789ab_")
    assert await ApiToken.all().count() == 2


async def test_listed_tokens_never_expose_secrets(innosystem_app: Any) -> None:
    alice = await auth.create_user("alice@example.com", "Alice", "platform_admin")
    bob = await auth.create_user("bob@example.com", "Bob", "platform_admin")
    created = [await auth.create_token(alice, "a1"), await auth.create_token(bob, "b1")]
    listed, cursor = await auth.list_tokens()
    assert cursor is None and len(listed) == 2
    mine, _ = await auth.list_tokens(alice.id)
    assert [t["name"] for t in mine] == ["a1"]
    text = repr(listed) + repr(mine) + repr([t for t, _ in created])
    for token, full in created:
        secret = full.rsplit("_", 1)[-1]
        assert full not in text and secret not in text and token.secret_hash not in text
    assert all("secret_hash" not in t and t["prefix"] for t in listed)
    assert "password_hash" not in auth.user_dict(alice)


# --- users --------------------------------------------------------------------------------------
async def test_role_and_tenant_rules(tenant: dict[str, Any]) -> None:
    reseller, customer = tenant["reseller"], tenant["customer"]
    cases: list[tuple[str, dict[str, Any], str]] = [
        ("platform_admin", {"reseller_id": reseller.id}, "reseller_id"),
        ("platform_admin", {"customer_id": customer.id}, "customer_id"),
        ("reseller_admin", {}, "reseller_id"),
        ("reseller_admin", {"reseller_id": reseller.id, "customer_id": customer.id}, "customer_id"),
        ("customer_admin", {}, "customer_id"),
        ("customer_member", {"reseller_id": reseller.id}, "reseller_id"),
        ("customer_member", {"customer_id": "not-a-uuid"}, "customer_id"),
        ("root", {}, "role"),
    ]
    for role, ids, field in cases:
        with pytest.raises(ValidationFailed) as exc:
            await auth.create_user(f"{uuid.uuid4().hex[:8]}@example.com", "X", role, **ids)
        assert field_of(exc) == field, (role, ids)
    for field in ("reseller_id", "customer_id"):
        role = "reseller_admin" if field == "reseller_id" else "customer_member"
        with pytest.raises(NotFound) as exc:
            await auth.create_user("nf@example.com", "X", role, **{field: uuid.uuid4()})
        assert field_of(exc) == field
    with pytest.raises(ValidationFailed) as exc:
        await auth.create_user("bad-email", "X", "platform_admin")
    assert field_of(exc) == "email"
    with pytest.raises(ValidationFailed) as exc:
        await auth.create_user("pw@example.com", "X", "platform_admin", password="short")
    assert field_of(exc) == "password"

    admin = await auth.create_user("ra@example.com", "RA", "reseller_admin", reseller.id)
    member = await auth.create_user(
        "cm@example.com", "CM", "customer_member", customer_id=str(customer.id)
    )
    assert (admin.reseller_id, admin.customer_id) == (reseller.id, None)
    assert (member.reseller_id, member.customer_id) == (None, customer.id)
    with pytest.raises(Conflict) as exc:
        await auth.create_user("CM@Example.COM", "Dup", "platform_admin")
    assert field_of(exc) == "email"
    assert await User.all().count() == 2

    listed, _ = await auth.list_users(reseller_id=reseller.id)
    assert [u.id for u in listed] == [admin.id]
    listed, _ = await auth.list_users(customer_id=customer.id)
    assert [u.id for u in listed] == [member.id]
    assert (await auth.get_user(member.id)).email == "cm@example.com"
    with pytest.raises(NotFound):
        await auth.get_user(uuid.uuid4())

    await tenants.delete_reseller(reseller.id)  # has customers: archived
    with pytest.raises(Conflict) as exc:
        await auth.create_user("late@example.com", "Late", "reseller_admin", reseller.id)
    assert field_of(exc) == "reseller_id"


async def test_set_role_rewrites_token_scopes(tenant: dict[str, Any]) -> None:
    admin = await auth.create_user("root@example.com", "Root", "platform_admin")
    user = await auth.create_user(
        "m@example.com", "M", "customer_member", customer_id=tenant["customer"].id
    )
    token, full = await auth.create_token(user, "m")
    assert token.scopes == auth.scopes_for("customer_member")

    with pytest.raises(ValidationFailed) as exc:
        await auth.set_role(user.id, "reseller_admin")
    assert field_of(exc) == "reseller_id"
    changed = await auth.set_role(
        user.id, "reseller_admin", reseller_id=tenant["reseller"].id, actor=auth.Actor(admin.id)
    )
    assert (changed.role, changed.reseller_id, changed.customer_id) == (
        "reseller_admin",
        tenant["reseller"].id,
        None,
    )
    _, fresh = await auth.authenticate_token(full)
    assert fresh.scopes == auth.scopes_for("reseller_admin")
    event = await AuditEvent.get(action="role_changed")
    assert event.actor_user_id == admin.id and event.details["from"]["role"] == "customer_member"

    # The last active platform admin can neither be demoted nor disabled.
    with pytest.raises(Conflict):
        await auth.set_role(admin.id, "reseller_admin", reseller_id=tenant["reseller"].id)
    with pytest.raises(Conflict):
        await auth.disable_user(admin.id)
    await auth.set_role(user.id, "platform_admin")
    await auth.disable_user(admin.id)


# --- bootstrap ----------------------------------------------------------------------------------
async def test_bootstrap_without_a_token(innosystem_app: Any) -> None:
    full = await auth.bootstrap_admin(None)
    assert full and TOKEN.fullmatch(full)
    found = await auth.authenticate_token(full)
    assert found is not None
    user, token = found
    assert (user.email, user.role, token.name, token.scopes) == (
        "admin@localhost",
        "platform_admin",
        "bootstrap",
        ["*"],
    )
    assert await auth.bootstrap_admin(None) is None  # an admin exists now
    assert await ApiToken.all().count() == 1


async def test_bootstrap_does_nothing_when_an_admin_exists(innosystem_app: Any) -> None:
    await auth.create_user("ops@example.com", "Ops", "platform_admin")
    assert await auth.bootstrap_admin(None) is None
    assert await User.all().count() == 1


@pytest.mark.parametrize(
    "given",
    [
        "inno_0123456789ab_" + "S3cr3t-_" * 5,  # our own form: stored by its prefix
        "any operator-chosen string of >= 32 characters",  # no: has spaces
        "an-operator-chosen-string-of-at-least-32-characters",
    ],
)
async def test_bootstrap_with_a_token(innosystem_app: Any, given: str) -> None:
    if " " in given:
        with pytest.raises(ConfigError):
            await auth.bootstrap_admin(given)
        return
    assert await auth.bootstrap_admin(given) is None
    assert await auth.bootstrap_admin(given) is None  # idempotent (every start)
    found = await auth.authenticate_token(given)
    assert found is not None and found[0].email == "admin@localhost"
    token = found[1]
    if given.startswith("inno_"):
        assert token.prefix == "0123456789ab"
        assert token.secret_hash == hashlib.sha256(given[18:].encode()).hexdigest()
    else:
        digest = hashlib.sha256(given.encode()).hexdigest()
        assert (token.prefix, token.secret_hash) == (digest[:12], digest)
    assert await ApiToken.all().count() == 1

    # A new value replaces (revokes) the older bootstrap token.
    newer = "inno_ba9876543210_" + "N" * 43
    assert await auth.bootstrap_admin(newer) is None
    assert await auth.authenticate_token(given) is None
    assert await auth.authenticate_token(newer) is not None
    assert await User.filter(email="admin@localhost").count() == 1

    # A revoked token never comes back, and a malformed one is refused.
    with pytest.raises(ConfigError, match="revoked"):
        await auth.bootstrap_admin(given)
    with pytest.raises(ConfigError):
        await auth.bootstrap_admin("short")
    actions = [e.action for e in await AuditEvent.all().order_by("id")]
    assert actions == ["user_created", "token_created", "token_revoked", "token_created"]


async def test_bootstrap_refuses_a_disabled_admin(innosystem_app: Any) -> None:
    assert await auth.bootstrap_admin(None)
    admin = await User.get(email="admin@localhost")
    ops = await auth.create_user("ops@example.com", "Ops", "platform_admin")
    await auth.disable_user(admin.id)
    # The operator disabled it on purpose: the setting does not silently re-enable it.
    with pytest.raises(ConfigError, match="admin@localhost"):
        await auth.bootstrap_admin("inno_0123456789ab_" + "S" * 43)
    # No active platform admin left, but admin@localhost is taken: nothing is created.
    await User.filter(id=ops.id).update(status="disabled")
    assert await auth.bootstrap_admin(None) is None
    assert (await User.all().count(), await ApiToken.all().count()) == (2, 1)


# --- audit --------------------------------------------------------------------------------------
async def test_audit_is_filed_per_tenant(tenant: dict[str, Any]) -> None:
    reseller, customer = tenant["reseller"], tenant["customer"]
    other = await tenants.create_reseller("Other reseller")
    await auth.audit(
        "top_up",
        target_type="wallet",
        target_id=customer.id,
        customer_id=customer.id,
        details={"amount_cents": 500, "password": "never stored"},
        address="192.0.2.1",
    )
    await auth.audit(
        "credit_limit_changed",
        target_type="reseller",
        target_id=reseller.id,
        reseller_id=reseller.id,
    )
    await auth.audit("adjustment", target_type="reseller", target_id=other.id, reseller_id=other.id)
    for n in range(3):
        await auth.audit("login_failed", target_type="user", target_id=f"u{n}")

    mine, _ = await auth.list_audit(reseller_id=reseller.id)
    assert [e.action for e in mine] == ["credit_limit_changed", "top_up"]
    top_up = mine[1]
    assert top_up.reseller_id == reseller.id  # filled in from the customer
    assert top_up.details == {"amount_cents": 500} and top_up.address == "192.0.2.1"
    assert [e.action for e in (await auth.list_audit(customer_id=customer.id))[0]] == ["top_up"]
    assert [e.action for e in (await auth.list_audit(reseller_id=other.id))[0]] == ["adjustment"]

    seen: list[int] = []
    cursor = None
    while True:
        page, cursor = await auth.list_audit(limit=2, cursor=cursor)
        seen += [e.id for e in page]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 6
    assert auth.audit_dict(mine[0])["action"] == "credit_limit_changed"
    with pytest.raises(ValidationFailed):
        await auth.list_audit(cursor="bogus")
    with pytest.raises(ValidationFailed):
        await auth.list_audit(limit=0)
    # Append-only: the service has nothing that changes or removes an event.
    assert not [n for n in dir(auth) if "audit" in n and ("delete" in n or "update" in n)]
