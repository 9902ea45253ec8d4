"""Who may call the API: users (one role each, tied to at most one tenant), their API tokens, and
the append-only audit trail of security-relevant actions.

The rules (role/tenant consistency, token format, hashing) live in ``services/auth.py``; these
models only store what it decides. Nothing secret is stored in plain text: a password as an
argon2id hash, a token as the SHA-256 of its secret part.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class Role(StrEnum):
    PLATFORM_ADMIN = "platform_admin"  # no tenant: sees and changes everything
    RESELLER_ADMIN = "reseller_admin"  # reseller_id set: that reseller and its customers
    CUSTOMER_ADMIN = "customer_admin"  # customer_id set: that customer, its projects and users
    CUSTOMER_MEMBER = "customer_member"  # customer_id set: that customer's jobs


class UserStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


class User(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    # Stored lower-cased by the service layer, so the unique index is case-insensitive everywhere.
    email = fields.CharField(max_length=320, unique=True)
    name = fields.CharField(max_length=200)
    # argon2id PHC string; null for a token-only user (no password login).
    password_hash = fields.CharField(max_length=255, null=True)
    role = fields.CharField(max_length=32)
    reseller = fields.ForeignKeyField(
        "models.Reseller", related_name="users", null=True, on_delete=fields.RESTRICT
    )
    customer = fields.ForeignKeyField(
        "models.Customer", related_name="users", null=True, on_delete=fields.RESTRICT
    )
    status = fields.CharField(max_length=16, default=UserStatus.ACTIVE.value)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "users"
        indexes = (
            ("reseller_id", "created_at"),
            ("customer_id", "created_at"),
            ("created_at", "id"),
        )

    def __repr__(self) -> str:  # never the password hash
        return f"<User {self.id} {self.email} {self.role}>"


class ApiToken(Model):
    """An API bearer token of the form inno_<prefix>_<secret>, stored hashed.

    Only ``prefix`` (to find the row) and ``secret_hash`` (hex SHA-256 of the secret part) are
    stored; the full token is shown once, when it is created. A fast hash is right here, unlike
    for passwords: a generated secret carries 256 bits of randomness (at least 128 bits is the
    requirement), so there is nothing to guess by brute force, and a slow hash would only cost
    every request time. Tokens are revoked (``revoked_at``), never deleted, hence RESTRICT.
    (A bootstrap token set through INNOSYSTEM_ADMIN_TOKEN in another form is stored as the
    SHA-256 of the whole string, its prefix being the first 12 hex digits of that hash.)
    """

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    user = fields.ForeignKeyField("models.User", related_name="tokens", on_delete=fields.RESTRICT)
    name = fields.CharField(max_length=200)
    prefix = fields.CharField(max_length=32, unique=True)
    secret_hash = fields.CharField(max_length=64)
    scopes = fields.JSONField(default=list)  # derived from the user's role, see scopes_for()
    expires_at = fields.DatetimeField(null=True)
    last_used_at = fields.DatetimeField(null=True)  # written at most once a minute
    revoked_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "api_tokens"
        indexes = (("user_id", "created_at"), ("created_at", "id"))

    def __repr__(self) -> str:  # never the secret hash
        return f"<ApiToken {self.id} {self.prefix} {self.name!r}>"


class AuditEvent(Model):
    """One security-relevant action: a login, a token or role change, a money move.

    Append-only: the service layer offers no update or delete. Actor, target and tenant are
    plain columns, not foreign keys, so an event outlives whatever it names. ``reseller_id`` and
    ``customer_id`` are the tenant(s) the event belongs to, for per-tenant listing; ``details``
    never holds a secret.
    """

    id = fields.BigIntField(primary_key=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    actor_user_id = fields.UUIDField(null=True)
    actor_token_prefix = fields.CharField(max_length=32, null=True)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32)
    target_id = fields.CharField(max_length=320)
    reseller_id = fields.UUIDField(null=True)
    customer_id = fields.UUIDField(null=True)
    address = fields.CharField(max_length=64, null=True)  # client IP
    details = fields.JSONField(default=dict)

    class Meta:
        table = "audit_events"
        indexes = (("reseller_id", "id"), ("customer_id", "id"), ("created_at",))
