"""A wallet per customer and its append-only ledger.

Each ledger row records its effect on both columns (``amount_cents`` on the balance,
``held_delta_cents`` on the held amount), so SUM over the ledger always equals the wallet row:
that is the invariant reconciliation checks.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from tortoise import fields
from tortoise.models import Model


class LedgerKind(StrEnum):
    TOP_UP = "top_up"
    HOLD = "hold"
    CAPTURE = "capture"
    RELEASE = "release"
    ADJUSTMENT = "adjustment"
    CREDIT_LIMIT = "credit_limit"  # amount 0: records a credit limit change on the ledger


class Wallet(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    customer = fields.OneToOneField(
        "models.Customer", related_name="wallet", on_delete=fields.RESTRICT
    )
    currency = fields.CharField(max_length=3, default="EUR")
    balance_cents = fields.BigIntField(default=0)
    held_cents = fields.BigIntField(default=0)
    credit_limit_cents = fields.BigIntField(default=0)
    # No updated_at: money moves are conditional raw UPDATEs; the ledger rows carry the times.
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "wallets"

    @property
    def open_to_buy_cents(self) -> int:
        return self.balance_cents + self.credit_limit_cents - self.held_cents


class WalletTransaction(Model):
    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    wallet = fields.ForeignKeyField(
        "models.Wallet", related_name="transactions", on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=16)
    amount_cents = fields.BigIntField()
    held_delta_cents = fields.BigIntField(default=0)
    balance_after_cents = fields.BigIntField()
    held_after_cents = fields.BigIntField()
    # Not a foreign key: jobs may be pruned one day, ledger rows never are.
    job_id = fields.UUIDField(null=True)
    reference = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "wallet_transactions"
        indexes = (("wallet_id", "created_at"), ("job_id",))
