"""Users, passwords, API tokens, role scopes and the audit trail: the foundation of authentication.

Nothing here is wired into the HTTP layer yet; the API does not ask for a token (see
docs/SECURITY.md). What the layer will call: :func:`authenticate_token` for ``Authorization:
Bearer <token>``, :func:`login` for a password, :func:`has_scope` against the token's scopes, and
:func:`audit` (or an :class:`Actor` passed to the services here) to record who did what.

Secrets never leave this module in the clear except once: the full token string that
:func:`create_token` (or :func:`bootstrap_admin`) returns. Passwords are stored as argon2id
hashes, tokens as the SHA-256 of their secret part, and no dict built here carries either hash.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from loguru import logger
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from innosystem.errors import ConfigError, Conflict, NotFound, ValidationFailed
from innosystem.models import ApiToken, AuditEvent, Customer, Reseller, Role, User, UserStatus
from innosystem.services import pagination
from innosystem.services.runners import utcnow
from innosystem.services.tenants import normalize_email

ROLES = tuple(role.value for role in Role)

# --- scopes ---------------------------------------------------------------------------------
#: What each role may do, as ``resource:action`` scopes; ``*`` is everything and
#: ``resource:*`` every action on one resource (see :func:`has_scope`). A token carries the
#: scopes of its user's role (copied at creation, rewritten by :func:`set_role`).
#:
#: Scopes say WHAT a caller may do, never WHERE: tenancy is separate. A reseller admin acts only
#: within ``user.reseller_id`` (that reseller and its customers), a customer role only within
#: ``user.customer_id``; the HTTP layer must check both the scope and the tenant (and answer 404,
#: not 403, for another tenant's ids, DESIGN §6). This table is the one place to refine with the
#: permission matrix.
SCOPES_BY_ROLE: dict[str, tuple[str, ...]] = {
    Role.PLATFORM_ADMIN: ("*",),
    Role.RESELLER_ADMIN: (
        "tenants:read",
        "tenants:write",
        "job_types:read",
        "jobs:read",
        "jobs:write",
        "schedules:read",
        "schedules:write",
        "artifacts:read",
        "artifacts:write",
        "wallets:read",
        "usage:read",
        "users:read",
        "users:write",
        "audit:read",
    ),
    Role.CUSTOMER_ADMIN: (
        "tenants:read",
        "projects:write",
        "job_types:read",
        "jobs:read",
        "jobs:write",
        "schedules:read",
        "schedules:write",
        "artifacts:read",
        "artifacts:write",
        "wallets:read",
        "usage:read",
        "users:read",
        "users:write",
        "audit:read",
    ),
    Role.CUSTOMER_MEMBER: (
        "tenants:read",
        "job_types:read",
        "jobs:read",
        "jobs:write",
        "schedules:read",
        "artifacts:read",
        "artifacts:write",
        "wallets:read",
        "usage:read",
    ),
}


def scopes_for(role: str) -> list[str]:
    """The scopes of ``role`` (a fresh list, safe to store)."""
    try:
        return list(SCOPES_BY_ROLE[Role(role)])
    except ValueError:
        raise ValidationFailed.field("role", f"must be one of {', '.join(ROLES)}") from None


def has_scope(granted: Iterable[str], needed: str) -> bool:
    """Whether ``granted`` allows ``needed`` (e.g. ``jobs:write``): exactly, by ``*``, or by
    ``jobs:*``."""
    resource = needed.split(":", 1)[0]
    return any(s == "*" or s == needed or s == f"{resource}:*" for s in granted)


# --- who acts (for the audit trail) ---------------------------------------------------------
@dataclass(frozen=True)
class Actor:
    """Who performs a change, as recorded in the audit trail: the authenticated user and token
    for an API request (with the client address), or nobody with ``via="cli"`` for an
    operator's command."""

    user_id: uuid.UUID | None = None
    token_prefix: str | None = None
    address: str | None = None
    via: str | None = None


NOBODY = Actor()

# --- passwords ------------------------------------------------------------------------------
# argon2id with OWASP's minimum parameters (19 MiB, 2 iterations, 1 lane). Raising them later is
# safe: a stored hash made with weaker ones is re-hashed at its user's next successful login.
ARGON2_TIME_COST = 2
ARGON2_MEMORY_COST = 19_456  # KiB
ARGON2_PARALLELISM = 1
PASSWORD_MIN_LENGTH = 12
PASSWORD_MAX_LENGTH = 1024

#: The hasher in use; tests may swap it for one with other parameters.
HASHER = PasswordHasher(
    time_cost=ARGON2_TIME_COST,
    memory_cost=ARGON2_MEMORY_COST,
    parallelism=ARGON2_PARALLELISM,
    type=Type.ID,
)
_dummy_hashes: dict[tuple[int, int, int], str] = {}


def check_password(password: Any) -> str:
    """A password a user may set: 12..1024 characters (422 naming ``password`` otherwise)."""
    if not isinstance(password, str) or not (
        PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH
    ):
        raise ValidationFailed.field(
            "password", f"must be {PASSWORD_MIN_LENGTH}..{PASSWORD_MAX_LENGTH} characters long"
        )
    return password


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string) of a valid password. CPU-bound (tens of ms): call it
    through ``asyncio.to_thread`` on the event loop, as the services here do."""
    return HASHER.hash(check_password(password))


def _dummy_hash(hasher: PasswordHasher) -> str:
    key = (hasher.time_cost, hasher.memory_cost, hasher.parallelism)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = hasher.hash(secrets.token_urlsafe(16))
    return _dummy_hashes[key]


def _verify(stored: str | None, password: str) -> bool:
    hasher = HASHER
    if stored is None:
        # No user, or no password: verify against a dummy hash so that the answer takes as
        # long as for a real user, and timing does not tell which emails exist.
        try:
            hasher.verify(_dummy_hash(hasher), password)
        except (VerificationError, InvalidHashError):
            pass
        return False
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(user: User | None, password: str) -> bool:
    """Whether ``password`` is ``user``'s, in about the same time whether or not the user exists
    or has a password. On success, a hash made with weaker parameters than today's is replaced
    (conditionally, so a concurrent password change wins). Ignores the user's status."""
    stored = user.password_hash if user is not None else None
    too_long = not isinstance(password, str) or len(password) > PASSWORD_MAX_LENGTH
    candidate = "" if too_long else password
    ok = await asyncio.to_thread(_verify, None if too_long else stored, candidate)
    if ok and user is not None and stored is not None and HASHER.check_needs_rehash(stored):
        fresh = await asyncio.to_thread(HASHER.hash, password)
        if await User.filter(id=user.id, password_hash=stored).update(password_hash=fresh):
            user.password_hash = fresh
            logger.info("password of user {} re-hashed with the current parameters", user.id)
    return ok


async def login(email: str, password: str, *, address: str | None = None) -> User | None:
    """The active user with this email and password, or None; records ``login`` or
    ``login_failed`` (with the reason; the password never) in the audit trail."""
    try:
        normalized: str | None = normalize_email(email) if isinstance(email, str) else None
    except ValidationFailed:
        normalized = None
    user = await User.get_or_none(email=normalized) if normalized else None
    ok = await verify_password(user, password)
    if ok and user is not None and user.status == UserStatus.ACTIVE:
        await audit(
            "login",
            actor_user_id=user.id,
            target_type="user",
            target_id=str(user.id),
            address=address,
            **await _tenant_of(user),
        )
        return user
    if user is None:
        reason = "unknown_email"
    elif not ok:
        reason = "bad_password"
    else:
        reason = "user_disabled"
    await audit(
        "login_failed",
        target_type="user",
        target_id=str(user.id) if user else (normalized or "-"),
        address=address,
        # Only a well-formed email is kept: a password typed into the email field is not.
        details={"email": normalized, "reason": reason},
        **(await _tenant_of(user) if user else {}),
    )
    return None


# --- tokens ---------------------------------------------------------------------------------
TOKEN_SCHEME = "inno"
PREFIX_HEX_CHARS = 12  # secrets.token_hex(6)
SECRET_BYTES = 32  # secrets.token_urlsafe(32): 256 bits, 43 characters
OPAQUE_MIN_LENGTH = 32  # a bootstrap token in another form
TOKEN_MAX_LENGTH = 1024
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is written at most this often
_TOKEN_FORM = re.compile(r"inno_([0-9a-f]{12})_([A-Za-z0-9_-]{32,1000})")
_DUMMY_DIGEST = hashlib.sha256(b"innosystem: no such token").hexdigest()


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def parse_token(raw: str) -> tuple[str, str] | None:
    """``(prefix, secret_hash)`` of a presented token, or None if it is malformed.

    Two forms: ``inno_<12 hex>_<secret of 32+ URL-safe characters>`` (what
    :func:`create_token` makes; the hash is of the secret part), and, only so that
    ``INNOSYSTEM_ADMIN_TOKEN`` may be any string an operator chose, any other string of
    32..1024 characters without whitespace: its hash is the SHA-256 of the whole string and its
    prefix the first 12 hex digits of that hash.
    """
    match = _TOKEN_FORM.fullmatch(raw)
    if match:
        return match[1], _sha256(match[2])
    if OPAQUE_MIN_LENGTH <= len(raw) <= TOKEN_MAX_LENGTH and not any(c.isspace() for c in raw):
        digest = _sha256(raw)
        return digest[:PREFIX_HEX_CHARS], digest
    return None


def _new_prefix() -> str:
    return secrets.token_hex(PREFIX_HEX_CHARS // 2)


def _new_secret() -> str:
    return secrets.token_urlsafe(SECRET_BYTES)


async def create_token(
    user: User | uuid.UUID | str,
    name: str,
    expires_at: datetime | None = None,
    *,
    actor: Actor = NOBODY,
) -> tuple[ApiToken, str]:
    """A new token for an active user, with its role's scopes: ``(row, full token string)``.
    The full string is returned this once and stored nowhere."""
    user = await get_user(user.id if isinstance(user, User) else user)  # its current status
    if user.status != UserStatus.ACTIVE:
        raise Conflict(
            f"user {user.id} is disabled", [{"field": "user_id", "message": "is disabled"}]
        )
    name = _check_name(name)
    if expires_at is not None and (expires_at.tzinfo is None or expires_at <= utcnow()):
        raise ValidationFailed.field("expires_at", "must be a time in the future, with a timezone")
    tenant = await _tenant_of(user)
    for _ in range(5):
        try:
            async with in_transaction() as conn:
                return await _insert_token(conn, user, name, expires_at, actor, tenant)
        except IntegrityError:  # a prefix collision (1 in 2^48 per pair): draw again
            logger.warning("token prefix collision; drawing another")
    raise Conflict("could not draw a unique token prefix; try again")


async def _insert_token(
    conn: BaseDBAsyncClient,
    user: User,
    name: str,
    expires_at: datetime | None,
    actor: Actor,
    tenant: dict[str, uuid.UUID | None],
) -> tuple[ApiToken, str]:
    prefix, secret = _new_prefix(), _new_secret()
    token = await ApiToken.create(
        using_db=conn,
        user_id=user.id,
        name=name,
        prefix=prefix,
        secret_hash=_sha256(secret),
        scopes=scopes_for(user.role),
        expires_at=expires_at,
    )
    details = {"name": name, "prefix": prefix, "user_id": str(user.id)}
    await _audit_as(actor, "token_created", "token", token.id, details, conn, **tenant)
    return token, f"{TOKEN_SCHEME}_{prefix}_{secret}"


async def authenticate_token(raw: str | None) -> tuple[User, ApiToken] | None:
    """The active user and live token a presented token string belongs to, or None.

    Looks the row up by prefix and compares SHA-256 digests with ``hmac.compare_digest``; a
    malformed string is hashed and compared against a dummy all the same (it skips only the
    lookup, which reveals nothing secret: the form is public). Revoked or expired tokens and
    disabled users are refused. ``last_used_at`` is written at most once a minute per token.
    """
    parsed = parse_token(raw) if isinstance(raw, str) else None
    if parsed is None:
        text = raw[:TOKEN_MAX_LENGTH] if isinstance(raw, str) else ""
        hmac.compare_digest(_sha256(text), _DUMMY_DIGEST)
        return None
    prefix, digest = parsed
    token = await ApiToken.filter(prefix=prefix).select_related("user").first()
    expected = token.secret_hash if token is not None else _DUMMY_DIGEST
    if not hmac.compare_digest(digest, expected) or token is None:
        return None
    now = utcnow()
    if token.revoked_at is not None or (token.expires_at is not None and token.expires_at <= now):
        return None
    user: User = token.user
    if user.status != UserStatus.ACTIVE:
        return None
    await _touch(token, now)
    return user, token


async def _touch(token: ApiToken, now: datetime) -> None:
    if token.last_used_at is not None and now - token.last_used_at < LAST_USED_RESOLUTION:
        return
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    await ApiToken.filter(stale, id=token.id).update(last_used_at=now)
    token.last_used_at = now


async def find_token(prefix_or_id: str) -> ApiToken:
    """A token by its id, its prefix, or ``inno_<prefix>...`` (only the prefix is read)."""
    text = prefix_or_id.strip()
    try:
        token = await ApiToken.get_or_none(id=uuid.UUID(text))
    except ValueError:
        if text.startswith(f"{TOKEN_SCHEME}_"):
            text = text[len(TOKEN_SCHEME) + 1 :][:PREFIX_HEX_CHARS]
        token = await ApiToken.get_or_none(prefix=text) if text else None
    if token is None:
        raise NotFound(f"token {text[:40]} not found")
    return token


async def revoke_token(token_id: uuid.UUID | str, *, actor: Actor = NOBODY) -> ApiToken:
    """Revoke a token for good (idempotent: revoking a revoked token changes nothing)."""
    token = await ApiToken.get_or_none(id=_uuid(token_id, "token_id"))
    if token is None:
        raise NotFound(f"token {token_id} not found")
    if token.revoked_at is not None:
        return token
    user = await User.get(id=token.user_id)
    tenant = await _tenant_of(user)
    now = utcnow()
    async with in_transaction() as conn:
        changed = await (
            ApiToken.filter(id=token.id, revoked_at__isnull=True)
            .using_db(conn)
            .update(revoked_at=now)
        )
        if changed:
            details = {"name": token.name, "prefix": token.prefix, "user_id": str(user.id)}
            await _audit_as(actor, "token_revoked", "token", token.id, details, conn, **tenant)
    await token.refresh_from_db()
    return token


def token_status(token: ApiToken, now: datetime | None = None) -> str:
    now = now or utcnow()
    if token.revoked_at is not None:
        return "revoked"
    if token.expires_at is not None and token.expires_at <= now:
        return "expired"
    return "active"


def token_dict(token: ApiToken) -> dict[str, Any]:
    """A token as it may be shown: the prefix, never the secret nor its hash."""
    return {
        "id": str(token.id),
        "user_id": str(token.user_id),
        "name": token.name,
        "prefix": token.prefix,
        "scopes": list(token.scopes or []),
        "status": token_status(token),
        "expires_at": token.expires_at,
        "last_used_at": token.last_used_at,
        "revoked_at": token.revoked_at,
        "created_at": token.created_at,
    }


async def list_tokens(
    user_id: uuid.UUID | str | None = None, *, limit: int = 100, cursor: str | None = None
) -> tuple[list[dict[str, Any]], str | None]:
    """Tokens (of one user, or all), newest first, as :func:`token_dict` dicts."""
    query = ApiToken.all()
    if user_id is not None:
        query = query.filter(user_id=_uuid(user_id, "user_id"))
    rows, next_cursor = await pagination.page(query, _limit(limit), cursor)
    return [token_dict(t) for t in rows], next_cursor


# --- users ----------------------------------------------------------------------------------
def _check_name(name: Any) -> str:
    if not isinstance(name, str) or not 1 <= len(name.strip()) <= 200:
        raise ValidationFailed.field("name", "must be 1..200 characters")
    return name.strip()


def _check_role(role: Any) -> str:
    if role not in ROLES:
        raise ValidationFailed.field("role", f"must be one of {', '.join(ROLES)}")
    return str(role)


def _uuid(value: Any, field: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed.field(field, "is not a UUID") from None


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValidationFailed.field("limit", "must be 1..1000")
    return limit


async def _check_tenant(
    role: str, reseller_id: Any, customer_id: Any
) -> tuple[uuid.UUID | None, uuid.UUID | None]:
    """The role's tenant rule: platform_admin has neither, reseller_admin a reseller only, the
    customer roles a customer only (422 naming the field); the tenant must exist (404) and be
    active (409)."""
    role = _check_role(role)
    wants_reseller = role == Role.RESELLER_ADMIN
    wants_customer = role in (Role.CUSTOMER_ADMIN, Role.CUSTOMER_MEMBER)
    for field, value, wanted in (
        ("reseller_id", reseller_id, wants_reseller),
        ("customer_id", customer_id, wants_customer),
    ):
        if wanted and value is None:
            raise ValidationFailed.field(field, f"is required for role {role}")
        if not wanted and value is not None:
            raise ValidationFailed.field(field, f"must not be set for role {role}")
    rid = _uuid(reseller_id, "reseller_id") if reseller_id is not None else None
    cid = _uuid(customer_id, "customer_id") if customer_id is not None else None
    for field, model, key in (("reseller_id", Reseller, rid), ("customer_id", Customer, cid)):
        if key is None:
            continue
        tenant = await model.get_or_none(id=key)
        if tenant is None:
            kind = model.__name__.lower()
            raise NotFound(f"{kind} {key} not found", [{"field": field, "message": "not found"}])
        if tenant.status != "active":
            kind = model.__name__.lower()
            raise Conflict(
                f"{kind} {key} is archived", [{"field": field, "message": "is archived"}]
            )
    return rid, cid


async def _tenant_of(user: User) -> dict[str, uuid.UUID | None]:
    """The tenant ids an event about ``user`` is filed under: a customer user's events carry
    the customer's reseller too, so a reseller sees its customers' events."""
    if user.customer_id is not None:
        customer = await Customer.get_or_none(id=user.customer_id)
        return {"customer_id": user.customer_id, "reseller_id": customer and customer.reseller_id}
    return {"reseller_id": user.reseller_id, "customer_id": None}


def _email_taken(email: str) -> Conflict:
    return Conflict(
        f"a user with email {email} already exists",
        [{"field": "email", "message": "already in use"}],
    )


def user_dict(user: User) -> dict[str, Any]:
    """A user as it may be shown: never the password hash, only whether there is one."""
    return {
        "id": str(user.id),
        "email": user.email,
        "name": user.name,
        "role": user.role,
        "reseller_id": str(user.reseller_id) if user.reseller_id else None,
        "customer_id": str(user.customer_id) if user.customer_id else None,
        "status": user.status,
        "has_password": user.password_hash is not None,
        "created_at": user.created_at,
        "updated_at": user.updated_at,
    }


async def create_user(
    email: str,
    name: str,
    role: str,
    reseller_id: uuid.UUID | str | None = None,
    customer_id: uuid.UUID | str | None = None,
    password: str | None = None,
    *,
    actor: Actor = NOBODY,
) -> User:
    """A new active user. Without a password it can only use tokens."""
    email = normalize_email(email)
    name = _check_name(name)
    role = _check_role(role)
    if password is not None:
        check_password(password)
    rid, cid = await _check_tenant(role, reseller_id, customer_id)
    if await User.exists(email=email):
        raise _email_taken(email)
    password_hash = await asyncio.to_thread(hash_password, password) if password else None
    try:
        async with in_transaction() as conn:
            user = await User.create(
                using_db=conn,
                email=email,
                name=name,
                role=role,
                reseller_id=rid,
                customer_id=cid,
                password_hash=password_hash,
            )
            await _audit_as(
                actor,
                "user_created",
                "user",
                user.id,
                {"email": email, "role": role},
                conn,
                **await _tenant_of(user),
            )
    except IntegrityError:  # lost a race on the unique email
        raise _email_taken(email) from None
    return user


async def get_user(user_id: uuid.UUID | str) -> User:
    user = await User.get_or_none(id=_uuid(user_id, "user_id"))
    if user is None:
        raise NotFound(f"user {user_id} not found")
    return user


async def get_user_by_email(email: str) -> User:
    """A user by email, compared lower-cased (``admin@localhost`` included)."""
    user = await User.get_or_none(email=email.strip().lower())
    if user is None:
        raise NotFound(f"user {email.strip()[:320]} not found")
    return user


async def list_users(
    reseller_id: uuid.UUID | str | None = None,
    customer_id: uuid.UUID | str | None = None,
    *,
    status: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> tuple[list[User], str | None]:
    """Users, newest first; ``reseller_id``/``customer_id`` select the users tied to exactly
    that tenant (a reseller's customers' users are listed by their customer ids)."""
    query = User.all()
    if reseller_id is not None:
        query = query.filter(reseller_id=_uuid(reseller_id, "reseller_id"))
    if customer_id is not None:
        query = query.filter(customer_id=_uuid(customer_id, "customer_id"))
    if status is not None:
        query = query.filter(status=status)
    return await pagination.page(query, _limit(limit), cursor)


async def _require_other_platform_admin(user: User) -> None:
    """The last active platform admin may not be disabled or demoted: nobody could undo it."""
    if user.role == Role.PLATFORM_ADMIN and user.status == UserStatus.ACTIVE:
        others = User.filter(role=Role.PLATFORM_ADMIN, status=UserStatus.ACTIVE).exclude(id=user.id)
        if not await others.exists():
            raise Conflict(
                "the last active platform admin cannot be disabled or given another role",
                [{"field": "user_id", "message": "is the last active platform admin"}],
            )


async def set_role(
    user_id: uuid.UUID | str,
    role: str,
    reseller_id: uuid.UUID | str | None = None,
    customer_id: uuid.UUID | str | None = None,
    *,
    actor: Actor = NOBODY,
) -> User:
    """Give a user another role (and the tenant that role needs); the scopes of the user's
    unrevoked tokens follow at once."""
    user = await get_user(user_id)
    rid, cid = await _check_tenant(role, reseller_id, customer_id)
    before = {
        "role": user.role,
        "reseller_id": str(user.reseller_id) if user.reseller_id else None,
        "customer_id": str(user.customer_id) if user.customer_id else None,
    }
    if role != Role.PLATFORM_ADMIN:
        await _require_other_platform_admin(user)
    async with in_transaction() as conn:
        user.role, user.reseller_id, user.customer_id = role, rid, cid
        await user.save(
            using_db=conn, update_fields=["role", "reseller_id", "customer_id", "updated_at"]
        )
        await (
            ApiToken.filter(user_id=user.id, revoked_at__isnull=True)
            .using_db(conn)
            .update(scopes=scopes_for(role))
        )
        after = {
            "role": role,
            "reseller_id": str(rid) if rid else None,
            "customer_id": str(cid) if cid else None,
        }
        await _audit_as(
            actor,
            "role_changed",
            "user",
            user.id,
            {"from": before, "to": after},
            conn,
            **await _tenant_of(user),
        )
    await user.refresh_from_db()
    return user


async def _set_status(user_id: uuid.UUID | str, status: str, action: str, actor: Actor) -> User:
    user = await get_user(user_id)
    if user.status == status:
        return user
    if status == UserStatus.DISABLED:
        await _require_other_platform_admin(user)
    async with in_transaction() as conn:
        changed = await (
            User.filter(id=user.id, status=user.status)
            .using_db(conn)
            .update(status=status, updated_at=utcnow())
        )
        if changed:
            await _audit_as(actor, action, "user", user.id, {}, conn, **await _tenant_of(user))
    await user.refresh_from_db()
    return user


async def disable_user(user_id: uuid.UUID | str, *, actor: Actor = NOBODY) -> User:
    """A disabled user can neither log in nor use any of its tokens (which stay as they are,
    so enabling the user again restores them)."""
    return await _set_status(user_id, UserStatus.DISABLED, "user_disabled", actor)


async def enable_user(user_id: uuid.UUID | str, *, actor: Actor = NOBODY) -> User:
    return await _set_status(user_id, UserStatus.ACTIVE, "user_enabled", actor)


async def set_password(
    user_id: uuid.UUID | str, password: str | None, *, actor: Actor = NOBODY
) -> User:
    """Set (or, with None, remove) a user's password."""
    user = await get_user(user_id)
    if password is not None:
        check_password(password)
    password_hash = await asyncio.to_thread(hash_password, password) if password else None
    async with in_transaction() as conn:
        user.password_hash = password_hash
        await user.save(using_db=conn, update_fields=["password_hash", "updated_at"])
        action = "password_changed" if password_hash else "password_removed"
        await _audit_as(actor, action, "user", user.id, {}, conn, **await _tenant_of(user))
    return user


# --- bootstrap ------------------------------------------------------------------------------
BOOTSTRAP_EMAIL = "admin@localhost"
BOOTSTRAP_TOKEN_NAME = "bootstrap"
_BOOTSTRAP = Actor(via="bootstrap")


async def bootstrap_admin(admin_token: str | None) -> str | None:
    """Make sure an operator can get in. Call it at start, after migrations.

    * ``admin_token`` given (setting ``auth.admin_token``, ``INNOSYSTEM_ADMIN_TOKEN``): the
      platform admin ``admin@localhost`` exists (created if missing) and that exact token is its
      live token named ``bootstrap``; any other live bootstrap token of that user is revoked
      (the setting was changed). The token is stored hashed as :func:`parse_token` says: for
      the ``inno_<12 hex>_<secret>`` form, its own prefix and the SHA-256 of the secret; for any
      other string of 32+ characters, the first 12 hex digits of its SHA-256 and that SHA-256.
      Returns None. Raises ConfigError (start-up should stop) when the token is malformed, was
      revoked (a revoked token never comes back: set a new one), belongs to another user, or
      ``admin@localhost`` exists but is disabled or not a platform admin.
    * not given, and no active platform admin exists: creates ``admin@localhost`` with a fresh
      token and returns the full token string, which the caller prints once (it is stored
      nowhere). If ``admin@localhost`` exists but is disabled or demoted, nothing is done and a
      warning says how to get in (``innosystem users create``/``tokens create``).
    * not given, and an active platform admin exists: nothing; returns None.

    Safe when several processes start at once: a lost race on a unique index is re-read.
    """
    if admin_token:
        parsed = parse_token(admin_token)
        if parsed is None:
            raise ConfigError(
                "INNOSYSTEM_ADMIN_TOKEN: must be inno_<12 hex digits>_<32+ URL-safe characters> "
                "or any 32..1024 characters without spaces"
            )
        for attempt in range(3):
            try:
                await _install_bootstrap_token(*parsed)
                return None
            except IntegrityError:
                if attempt == 2:
                    raise
        return None

    if await User.filter(role=Role.PLATFORM_ADMIN, status=UserStatus.ACTIVE).exists():
        return None
    if await User.exists(email=BOOTSTRAP_EMAIL):
        logger.warning(
            "no active platform admin, and {} is disabled or not a platform admin: create one "
            "with `innosystem users create --role platform_admin` and `innosystem tokens "
            "create`, or set INNOSYSTEM_ADMIN_TOKEN",
            BOOTSTRAP_EMAIL,
        )
        return None
    try:
        # One transaction: an admin without its token would lock the operator out.
        async with in_transaction() as conn:
            user = await _create_bootstrap_user(conn)
            _token, full = await _insert_token(
                conn, user, BOOTSTRAP_TOKEN_NAME, None, _BOOTSTRAP, {}
            )
    except IntegrityError:  # another process is creating it (and prints its own token)
        return None
    logger.warning("created the platform admin {} with a new API token", BOOTSTRAP_EMAIL)
    return full


async def _create_bootstrap_user(conn: BaseDBAsyncClient) -> User:
    user = await User.create(
        using_db=conn,
        email=BOOTSTRAP_EMAIL,
        name="Platform admin (bootstrap)",
        role=Role.PLATFORM_ADMIN.value,
    )
    details = {"email": BOOTSTRAP_EMAIL, "role": Role.PLATFORM_ADMIN.value}
    await _audit_as(_BOOTSTRAP, "user_created", "user", user.id, details, conn)
    return user


async def _install_bootstrap_token(prefix: str, digest: str) -> None:
    async with in_transaction() as conn:
        user = await User.get_or_none(email=BOOTSTRAP_EMAIL).using_db(conn)
        if user is None:
            user = await _create_bootstrap_user(conn)
        elif user.role != Role.PLATFORM_ADMIN or user.status != UserStatus.ACTIVE:
            raise ConfigError(
                f"INNOSYSTEM_ADMIN_TOKEN: the user {BOOTSTRAP_EMAIL} exists but is "
                f"{user.status} with role {user.role}; enable it as a platform admin or unset "
                "INNOSYSTEM_ADMIN_TOKEN"
            )
        existing = await ApiToken.get_or_none(prefix=prefix).using_db(conn)
        if existing is not None:
            if existing.user_id != user.id or not hmac.compare_digest(existing.secret_hash, digest):
                raise ConfigError(
                    "INNOSYSTEM_ADMIN_TOKEN: another token has the same prefix; choose another"
                )
            if existing.revoked_at is not None:
                raise ConfigError(
                    "INNOSYSTEM_ADMIN_TOKEN: this token was revoked; set a new one or unset it"
                )
        await _revoke_bootstrap_tokens(conn, user, keep=prefix)
        if existing is not None:
            if existing.expires_at is not None or existing.scopes != scopes_for(user.role):
                existing.expires_at, existing.scopes = None, scopes_for(user.role)
                await existing.save(using_db=conn, update_fields=["expires_at", "scopes"])
            return
        token = await ApiToken.create(
            using_db=conn,
            user_id=user.id,
            name=BOOTSTRAP_TOKEN_NAME,
            prefix=prefix,
            secret_hash=digest,
            scopes=scopes_for(user.role),
        )
        details = {"name": BOOTSTRAP_TOKEN_NAME, "prefix": prefix, "user_id": str(user.id)}
        await _audit_as(
            Actor(via="INNOSYSTEM_ADMIN_TOKEN"), "token_created", "token", token.id, details, conn
        )
        logger.info("bootstrap admin token {} installed for {}", prefix, BOOTSTRAP_EMAIL)


async def _revoke_bootstrap_tokens(conn: BaseDBAsyncClient, user: User, keep: str) -> None:
    """Revoke the user's live bootstrap tokens other than ``keep``: INNOSYSTEM_ADMIN_TOKEN was
    changed, and the old value must stop working."""
    older = await (
        ApiToken.filter(user_id=user.id, name=BOOTSTRAP_TOKEN_NAME, revoked_at__isnull=True)
        .exclude(prefix=keep)
        .using_db(conn)
    )
    now = utcnow()
    for token in older:
        await ApiToken.filter(id=token.id).using_db(conn).update(revoked_at=now)
        details = {"name": token.name, "prefix": token.prefix, "reason": "replaced"}
        await _audit_as(
            Actor(via="INNOSYSTEM_ADMIN_TOKEN"), "token_revoked", "token", token.id, details, conn
        )
        logger.info("older bootstrap token {} revoked", token.prefix)


# --- audit ----------------------------------------------------------------------------------
#: Keys never stored in ``details``: a name containing one of these is dropped (with a warning:
#: the caller has a bug), unless it ends in one of the harmless suffixes (``token_prefix``).
_SECRET_KEY_PARTS = ("password", "passwd", "secret", "token", "authorization", "credential")
_HARMLESS_SUFFIXES = ("_prefix", "_id", "_name")
_TOKEN_IN_TEXT = re.compile(r"inno_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def _secret_key(key: str) -> bool:
    lowered = key.lower()
    if lowered.endswith(_HARMLESS_SUFFIXES) or lowered == "prefix":
        return False
    return any(part in lowered for part in _SECRET_KEY_PARTS)


def scrub_details(details: Any, path: str = "details") -> Any:
    """``details`` without secrets: keys named like one are dropped and a full token string in
    a value is masked. Callers pass no secrets; this is the safety net, not the policy."""
    if isinstance(details, dict):
        out: dict[str, Any] = {}
        for key, value in details.items():
            if _secret_key(str(key)):
                logger.warning("audit: dropped the key {}.{} (looks like a secret)", path, key)
                continue
            out[str(key)] = scrub_details(value, f"{path}.{key}")
        return out
    if isinstance(details, list | tuple):
        return [scrub_details(value, path) for value in details]
    if isinstance(details, str) and _TOKEN_IN_TEXT.search(details):
        logger.warning("audit: masked a token in {}", path)
        return _TOKEN_IN_TEXT.sub("inno_[redacted]", details)
    if isinstance(details, uuid.UUID | datetime):
        return str(details)
    return details


async def audit(
    action: str,
    *,
    actor_user_id: uuid.UUID | None = None,
    actor_token_prefix: str | None = None,
    target_type: str,
    target_id: Any,
    reseller_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
    address: str | None = None,
    details: dict[str, Any] | None = None,
    using_db: BaseDBAsyncClient | None = None,
) -> AuditEvent:
    """Append one event. Pass ``using_db`` to write it in the transaction of the change it
    records, so the two commit or roll back together. A ``customer_id`` without a
    ``reseller_id`` gets the customer's reseller filled in, so a reseller's listing includes
    its customers' events. There is no update or delete: the trail is append-only."""
    if customer_id is not None and reseller_id is None:
        query = Customer.filter(id=customer_id)
        if using_db is not None:
            query = query.using_db(using_db)
        found = await query.limit(1).values_list("reseller_id", flat=True)
        reseller_id = found[0] if found else None
    return await AuditEvent.create(
        using_db=using_db,
        action=action,
        actor_user_id=actor_user_id,
        actor_token_prefix=actor_token_prefix,
        target_type=target_type,
        target_id=str(target_id)[:320],
        reseller_id=reseller_id,
        customer_id=customer_id,
        address=address[:64] if address else None,
        details=scrub_details(details or {}),
    )


async def _audit_as(
    actor: Actor,
    action: str,
    target_type: str,
    target_id: Any,
    details: dict[str, Any],
    conn: BaseDBAsyncClient,
    reseller_id: uuid.UUID | None = None,
    customer_id: uuid.UUID | None = None,
) -> AuditEvent:
    if actor.via:
        details = {**details, "via": actor.via}
    return await audit(
        action,
        actor_user_id=actor.user_id,
        actor_token_prefix=actor.token_prefix,
        target_type=target_type,
        target_id=target_id,
        reseller_id=reseller_id,
        customer_id=customer_id,
        address=actor.address,
        details=details,
        using_db=conn,
    )


def audit_dict(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "created_at": event.created_at,
        "action": event.action,
        "actor_user_id": str(event.actor_user_id) if event.actor_user_id else None,
        "actor_token_prefix": event.actor_token_prefix,
        "target_type": event.target_type,
        "target_id": event.target_id,
        "reseller_id": str(event.reseller_id) if event.reseller_id else None,
        "customer_id": str(event.customer_id) if event.customer_id else None,
        "address": event.address,
        "details": event.details,
    }


async def list_audit(
    reseller_id: uuid.UUID | str | None = None,
    customer_id: uuid.UUID | str | None = None,
    *,
    action: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[AuditEvent], str | None]:
    """Events, newest first (keyset on the id). ``reseller_id`` selects the reseller's own events
    and its customers'; ``customer_id`` one customer's."""
    query = AuditEvent.all()
    if reseller_id is not None:
        query = query.filter(reseller_id=_uuid(reseller_id, "reseller_id"))
    if customer_id is not None:
        query = query.filter(customer_id=_uuid(customer_id, "customer_id"))
    if action is not None:
        query = query.filter(action=action)
    return await pagination.page_by_id(query, _limit(limit), cursor)
