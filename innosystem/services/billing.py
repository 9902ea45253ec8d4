"""Wallet money rules: Open-to-Buy authorization holds, capture, release, top-ups.

Every change of a wallet is one conditional UPDATE ... RETURNING plus one ledger row, inside the
caller's transaction, so the ledger always sums to the wallet (``SUM(amount_cents) = balance``,
``SUM(held_delta_cents) = held``). Open-to-buy is the card issuer's sense:
``balance + credit_limit - held`` is what can still be authorized.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.transactions import in_transaction

from innosystem import db
from innosystem.errors import InsufficientFunds, NotFound, ValidationFailed
from innosystem.models import LedgerKind, Wallet, WalletTransaction
from innosystem.services import idempotency, pagination

#: Upper bound for one money amount (10 million in major units): a typo guard, not a policy.
MAX_AMOUNT_CENTS = 1_000_000_000

#: Active ISO 4217 currency codes (funds and precious metals excluded).
CURRENCIES = frozenset(
    """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP
    BYN BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP
    GEL GHS GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR
    KMF KPW KRW KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK
    MXN MYR MZN NAD NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR
    SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS
    UAH UGX USD UYU UZS VES VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
    """.split()
)


def check_currency(currency: str) -> str:
    code = currency.strip().upper()
    if code not in CURRENCIES:
        raise ValidationFailed.field("currency", "must be an ISO 4217 currency code such as EUR")
    return code


def open_to_buy(balance_cents: int, credit_limit_cents: int, held_cents: int) -> int:
    return balance_cents + credit_limit_cents - held_cents


def check_amount(amount_cents: Any, field: str = "amount_cents", signed: bool = False) -> int:
    """Positive cents (or non-zero, when ``signed``) within MAX_AMOUNT_CENTS."""
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise ValidationFailed.field(field, "must be an integer number of cents")
    if signed:
        if amount_cents == 0 or abs(amount_cents) > MAX_AMOUNT_CENTS:
            raise ValidationFailed.field(
                field, f"must be non-zero and between -{MAX_AMOUNT_CENTS} and {MAX_AMOUNT_CENTS}"
            )
    elif not 0 < amount_cents <= MAX_AMOUNT_CENTS:
        raise ValidationFailed.field(field, f"must be between 1 and {MAX_AMOUNT_CENTS}")
    return amount_cents


def check_credit_limit(credit_limit_cents: Any) -> int:
    if isinstance(credit_limit_cents, bool) or not isinstance(credit_limit_cents, int):
        raise ValidationFailed.field("credit_limit_cents", "must be an integer number of cents")
    if not 0 <= credit_limit_cents <= MAX_AMOUNT_CENTS:
        raise ValidationFailed.field(
            "credit_limit_cents", f"must be between 0 and {MAX_AMOUNT_CENTS}"
        )
    return credit_limit_cents


async def _move(
    conn: BaseDBAsyncClient,
    customer_id: uuid.UUID,
    *,
    kind: LedgerKind,
    balance_delta: int,
    held_delta: int,
    job_id: uuid.UUID | None = None,
    reference: str = "",
    require_open_to_buy: int | None = None,
) -> WalletTransaction | None:
    """Apply one ledger movement; with ``require_open_to_buy`` the update is conditional and
    ``None`` comes back when the wallet cannot cover it (row count 0, nothing written)."""
    text = (
        "UPDATE wallets SET balance_cents = balance_cents + ?, held_cents = held_cents + ? "
        "WHERE customer_id = ?"
    )
    # Addressed by customer (unique per wallet) so no extra read is needed to find the wallet.
    params: list[Any] = [balance_delta, held_delta, str(customer_id)]
    if require_open_to_buy is not None:
        text += " AND balance_cents + credit_limit_cents - held_cents >= ?"
        params.append(require_open_to_buy)
    rows = await db.fetch(conn, text + " RETURNING id, balance_cents, held_cents", params)
    if not rows:
        return None
    return await WalletTransaction.create(
        using_db=conn,
        wallet_id=rows[0]["id"],
        kind=kind.value,
        amount_cents=balance_delta,
        held_delta_cents=held_delta,
        balance_after_cents=rows[0]["balance_cents"],
        held_after_cents=rows[0]["held_cents"],
        job_id=job_id,
        reference=reference[:200],
    )


async def place_hold(
    conn: BaseDBAsyncClient, customer_id: uuid.UUID, amount_cents: int, job_id: uuid.UUID
) -> WalletTransaction:
    """Authorize ``amount_cents`` for a job, or raise InsufficientFunds (402) changing nothing."""
    tx = await _move(
        conn,
        customer_id,
        kind=LedgerKind.HOLD,
        balance_delta=0,
        held_delta=amount_cents,
        job_id=job_id,
        require_open_to_buy=amount_cents,
    )
    if tx is None:
        wallet = await get_wallet(customer_id, conn)
        raise InsufficientFunds(
            f"the wallet's open-to-buy is {wallet.open_to_buy_cents} cents; "
            f"this job costs {amount_cents} cents",
            [{"field": "customer_id", "message": "insufficient funds"}],
        )
    return tx


async def capture_hold(
    conn: BaseDBAsyncClient, customer_id: uuid.UUID, amount_cents: int, job_id: uuid.UUID
) -> None:
    """Turn a job's hold into a charge. Callers guarantee once-only by their own conditional
    status transition in the same transaction."""
    await _move(
        conn,
        customer_id,
        kind=LedgerKind.CAPTURE,
        balance_delta=-amount_cents,
        held_delta=-amount_cents,
        job_id=job_id,
    )


async def release_hold(
    conn: BaseDBAsyncClient,
    customer_id: uuid.UUID,
    amount_cents: int,
    job_id: uuid.UUID,
    reference: str = "",
) -> None:
    await _move(
        conn,
        customer_id,
        kind=LedgerKind.RELEASE,
        balance_delta=0,
        held_delta=-amount_cents,
        job_id=job_id,
        reference=reference,
    )


@dataclass(frozen=True)
class WalletChange:
    """A wallet after one money movement, with the ledger row that made it."""

    wallet: Wallet
    transaction: WalletTransaction


async def _change(
    customer_id: uuid.UUID,
    keyed: idempotency.Keyed | None,
    render: Callable[[WalletChange], dict[str, Any]],
    **move: Any,
) -> idempotency.Outcome[WalletChange]:
    async def effect(conn: BaseDBAsyncClient) -> WalletChange:
        tx = await _move(conn, customer_id, **move)
        if tx is None:
            wallet = await get_wallet(customer_id, conn)  # 404 for an unknown customer
            raise InsufficientFunds(
                f"the wallet's open-to-buy is {wallet.open_to_buy_cents} cents; this adjustment "
                f"takes {-move['balance_delta']} cents",
                [{"field": "amount_cents", "message": "exceeds open-to-buy"}],
            )
        wallet = await Wallet.get(id=tx.wallet_id).using_db(conn)  # type: ignore[attr-defined]
        return WalletChange(wallet, tx)

    return await idempotency.once(keyed, effect, render, 201)


async def top_up(
    customer_id: uuid.UUID,
    amount_cents: Any,
    reference: str = "",
    *,
    keyed: idempotency.Keyed | None = None,
    render: Callable[[WalletChange], dict[str, Any]] = lambda change: {},
) -> idempotency.Outcome[WalletChange]:
    """Add money. Idempotent per ``keyed``; ``render`` makes the response a replay returns."""
    return await _change(
        customer_id,
        keyed,
        render,
        kind=LedgerKind.TOP_UP,
        balance_delta=check_amount(amount_cents),
        held_delta=0,
        reference=reference,
    )


async def adjust(
    customer_id: uuid.UUID,
    amount_cents: Any,
    reason: str,
    *,
    keyed: idempotency.Keyed | None = None,
    render: Callable[[WalletChange], dict[str, Any]] = lambda change: {},
) -> idempotency.Outcome[WalletChange]:
    """An operator's correction, either sign. A debit may not take open-to-buy below zero (the
    same rule as a hold), so an adjustment can never spend money already authorized."""
    amount = check_amount(amount_cents, signed=True)
    reason = reason.strip()
    if not reason:
        raise ValidationFailed.field("reason", "is required")
    return await _change(
        customer_id,
        keyed,
        render,
        kind=LedgerKind.ADJUSTMENT,
        balance_delta=amount,
        held_delta=0,
        reference=reason,
        require_open_to_buy=-amount if amount < 0 else None,
    )


async def set_credit_limit(
    customer_id: uuid.UUID, credit_limit_cents: Any, reason: str = ""
) -> Wallet:
    """Change how far the wallet may go below zero. Recorded on the ledger as a zero-amount
    row, so every change of a wallet is a ledger row. Lowering it below what is held is allowed
    (an issuer cutting a limit does not void authorizations); new holds then wait."""
    limit = check_credit_limit(credit_limit_cents)
    async with in_transaction() as conn:
        wallet = (
            await Wallet.filter(customer_id=customer_id).select_for_update().using_db(conn).first()
        )
        if wallet is None:
            raise NotFound(f"customer {customer_id} not found")
        note = f"credit limit {wallet.credit_limit_cents} -> {limit}"
        await Wallet.filter(id=wallet.id).using_db(conn).update(credit_limit_cents=limit)
        await WalletTransaction.create(
            using_db=conn,
            wallet_id=wallet.id,
            kind=LedgerKind.CREDIT_LIMIT.value,
            amount_cents=0,
            held_delta_cents=0,
            balance_after_cents=wallet.balance_cents,
            held_after_cents=wallet.held_cents,
            reference=(f"{note}: {reason.strip()}" if reason.strip() else note)[:200],
        )
        wallet.credit_limit_cents = limit
        return wallet


async def get_wallet(customer_id: uuid.UUID, conn: BaseDBAsyncClient | None = None) -> Wallet:
    query = Wallet.filter(customer_id=customer_id)
    wallet = await (query.using_db(conn) if conn else query).first()
    if wallet is None:
        raise NotFound(f"customer {customer_id} not found")
    return wallet


async def reconcile(wallet_id: uuid.UUID) -> dict[str, Any]:
    """Recompute balance and held from the ledger and compare with the wallet row. One statement,
    so the wallet and its ledger are read from one snapshot even while money moves."""
    conn = db.connection()
    rows = await db.fetch(
        conn,
        "SELECT w.balance_cents AS balance_cents, w.held_cents AS held_cents, "
        "(SELECT COALESCE(SUM(t.amount_cents), 0) FROM wallet_transactions t "
        " WHERE t.wallet_id = w.id) AS ledger_balance, "
        "(SELECT COALESCE(SUM(t.held_delta_cents), 0) FROM wallet_transactions t "
        " WHERE t.wallet_id = w.id) AS ledger_held "
        "FROM wallets w WHERE w.id = ?",
        [str(wallet_id)],
    )
    if not rows:
        raise NotFound(f"wallet {wallet_id} not found")
    row = rows[0]
    balance, held = int(row["balance_cents"]), int(row["held_cents"])
    ledger_balance, ledger_held = int(row["ledger_balance"]), int(row["ledger_held"])
    return {
        "wallet_id": str(wallet_id),
        "balance_cents": balance,
        "held_cents": held,
        "ledger_balance_cents": ledger_balance,
        "ledger_held_cents": ledger_held,
        "matches": ledger_balance == balance and ledger_held == held,
    }


async def list_transactions(
    customer_id: uuid.UUID,
    limit: int = 50,
    cursor: str | None = None,
    kind: LedgerKind | None = None,
) -> tuple[list[WalletTransaction], str | None]:
    """The wallet's ledger, newest first."""
    wallet = await get_wallet(customer_id)
    query = WalletTransaction.filter(wallet_id=wallet.id)
    if kind is not None:
        query = query.filter(kind=kind.value)
    return await pagination.page(query, limit, cursor)
