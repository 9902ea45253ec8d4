"""``innosystem users ...`` and ``innosystem tokens ...``: manage users and API tokens from an
operator's shell, straight on the database (like ``innosystem seed``: migrate if configured,
connect, act, close).

A token is printed once, by ``tokens create``, alone on stdout (so ``TOKEN=$(innosystem tokens
create ...)`` works); it is stored only hashed and no command can show it again. A password is
read from stdin (``--password-stdin``), never from the command line, where other users of the
machine could see it in the process list. A refused request (unknown user, bad role, ...) ends
with one line on stderr and exit code 1.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from innosystem import db
from innosystem.config import Settings
from innosystem.models.auth import Role

CLI = "cli"  # the audit trail's "via" for every change made here
ROLES = tuple(role.value for role in Role)


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of days, got {text!r}") from None
    if not 1 <= days <= 3650:
        raise argparse.ArgumentTypeError(f"{days} is out of range 1..3650")
    return days


def add_parsers(sub: Any, add_common: Callable[[argparse.ArgumentParser], None]) -> None:
    """The ``users`` and ``tokens`` subcommands (``add_common``: the shared database flags)."""
    users = sub.add_parser("users", help="manage users (create, list, set-role, enable, disable)")
    users_sub = users.add_subparsers(dest="users_command", required=True)

    create = users_sub.add_parser("create", help="create a user")
    add_common(create)
    create.add_argument("--email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--reseller-id", help="required for reseller_admin")
    create.add_argument("--customer-id", help="required for customer_admin, customer_member")
    create.add_argument(
        "--password-stdin",
        action="store_true",
        help="read a password (12..1024 characters) from stdin; without it: token-only user",
    )

    listing = users_sub.add_parser("list", help="list users")
    add_common(listing)
    listing.add_argument("--reseller-id")
    listing.add_argument("--customer-id")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    set_role = users_sub.add_parser("set-role", help="give a user another role")
    add_common(set_role)
    set_role.add_argument("email")
    set_role.add_argument("--role", required=True, choices=ROLES)
    set_role.add_argument("--reseller-id")
    set_role.add_argument("--customer-id")

    for verb, what in (("enable", "let a user in again"), ("disable", "lock a user out")):
        parser = users_sub.add_parser(verb, help=what)
        add_common(parser)
        parser.add_argument("email")

    tokens = sub.add_parser("tokens", help="manage API tokens (create, list, revoke)")
    tokens_sub = tokens.add_subparsers(dest="tokens_command", required=True)

    create = tokens_sub.add_parser("create", help="create a token; printed once on stdout")
    add_common(create)
    create.add_argument("--user-email", required=True)
    create.add_argument("--name", required=True)
    create.add_argument("--expires-days", type=_days, help="1..3650 (default: never expires)")

    listing = tokens_sub.add_parser("list", help="list tokens (prefixes only)")
    add_common(listing)
    listing.add_argument("--user-email")
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    revoke = tokens_sub.add_parser("revoke", help="revoke a token for good")
    add_common(revoke)
    revoke.add_argument("token", metavar="PREFIX_OR_ID")


def _read_password() -> str:
    if sys.stdin.isatty():
        return getpass.getpass("Password: ")
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text  # the one newline `echo` adds


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip())


def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value is not None else "-"


async def _users(args: argparse.Namespace) -> None:
    from innosystem.services import auth

    actor = auth.Actor(via=CLI)
    command = args.users_command
    if command == "create":
        user = await auth.create_user(
            args.email,
            args.name,
            args.role,
            reseller_id=args.reseller_id,
            customer_id=args.customer_id,
            password=args.password,
            actor=actor,
        )
        print(f"created user {user.id} {user.email} ({user.role})")
    elif command == "list":
        users: list[Any] = []
        cursor = None
        while True:
            page, cursor = await auth.list_users(
                args.reseller_id, args.customer_id, limit=1000, cursor=cursor
            )
            users += page
            if cursor is None:
                break
        if args.json:
            print(json.dumps([auth.user_dict(u) for u in users], indent=2, default=str))
            return
        rows = [("ID", "EMAIL", "ROLE", "TENANT", "STATUS", "PASSWORD", "CREATED")]
        for u in users:
            tenant = u.customer_id or u.reseller_id
            rows.append(
                (
                    str(u.id),
                    u.email,
                    u.role,
                    str(tenant) if tenant else "-",
                    u.status,
                    "yes" if u.password_hash else "no",
                    _when(u.created_at),
                )
            )
        _table(rows)
    elif command == "set-role":
        user = await auth.get_user_by_email(args.email)
        user = await auth.set_role(
            user.id, args.role, args.reseller_id, args.customer_id, actor=actor
        )
        print(f"user {user.email} is now {user.role}")
    else:
        user = await auth.get_user_by_email(args.email)
        change = auth.enable_user if command == "enable" else auth.disable_user
        user = await change(user.id, actor=actor)
        print(f"user {user.email} is {user.status}")


async def _tokens(args: argparse.Namespace) -> None:
    from innosystem.services import auth
    from innosystem.services.runners import utcnow

    actor = auth.Actor(via=CLI)
    command = args.tokens_command
    if command == "create":
        user = await auth.get_user_by_email(args.user_email)
        expires = utcnow() + timedelta(days=args.expires_days) if args.expires_days else None
        token, full = await auth.create_token(user, args.name, expires, actor=actor)
        print(
            f"token {token.prefix} ({token.id}) for {user.email}, "
            f"expires {_when(token.expires_at)}; shown once, store it now:",
            file=sys.stderr,
        )
        print(full)
    elif command == "list":
        user_id = None
        if args.user_email:
            user_id = (await auth.get_user_by_email(args.user_email)).id
        tokens: list[dict[str, Any]] = []
        cursor = None
        while True:
            page, cursor = await auth.list_tokens(user_id, limit=1000, cursor=cursor)
            tokens += page
            if cursor is None:
                break
        if args.json:
            print(json.dumps(tokens, indent=2, default=str))
            return
        emails = {str(u.id): u.email for u in await _users_by_id({t["user_id"] for t in tokens})}
        rows = [("PREFIX", "ID", "USER", "NAME", "STATUS", "EXPIRES", "LAST USED", "CREATED")]
        for t in tokens:
            rows.append(
                (
                    t["prefix"],
                    t["id"],
                    emails.get(t["user_id"], t["user_id"]),
                    t["name"],
                    t["status"],
                    _when(t["expires_at"]),
                    _when(t["last_used_at"]),
                    _when(t["created_at"]),
                )
            )
        _table(rows)
    else:  # revoke
        token = await auth.find_token(args.token)
        token = await auth.revoke_token(token.id, actor=actor)
        print(f"revoked token {token.prefix} ({token.id}) at {_when(token.revoked_at)}")


async def _users_by_id(ids: set[str]) -> list[Any]:
    from innosystem.models import User

    return await User.filter(id__in=list(ids)) if ids else []


async def run(settings: Settings, args: argparse.Namespace) -> None:
    """Run ``innosystem users ...`` or ``innosystem tokens ...`` on the configured database."""
    # Read the password before anything else: a prompt after migration logs would be lost.
    args.password = None
    if getattr(args, "password_stdin", False):
        args.password = _read_password()
    work: Callable[[argparse.Namespace], Awaitable[None]] = (
        _users if args.command == "users" else _tokens
    )
    if settings.auto_migrate:
        await db.migrate(settings)
    await db.connect(settings)
    try:
        await work(args)
    finally:
        await db.close()
