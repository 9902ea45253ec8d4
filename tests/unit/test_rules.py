"""Pure rules, tested without a database: money bounds, retry backoff, idempotency hashing,
cursors, email normalisation and the config value parsers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from innosystem import config
from innosystem.errors import ConfigError, ValidationFailed
from innosystem.services import billing, idempotency, jobs, pagination, tenants


# --- billing ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("balance", "credit", "held", "expected"),
    [
        (0, 0, 0, 0),
        (1_000, 0, 0, 1_000),
        (1_000, 500, 0, 1_500),
        (1_000, 500, 300, 1_200),
        (0, 500, 700, -200),
        (100, 0, 100, 0),
    ],
)
def test_open_to_buy(balance: int, credit: int, held: int, expected: int):
    assert billing.open_to_buy(balance, credit, held) == expected


@pytest.mark.parametrize("amount", [1, 250, billing.MAX_AMOUNT_CENTS])
def test_check_amount_accepts_positive_integers_up_to_the_cap(amount: int):
    assert billing.check_amount(amount) == amount


@pytest.mark.parametrize(
    "amount",
    [
        True,
        False,
        1.0,
        1.5,
        "10",
        None,
        0,
        -1,
        -(10**12),
        billing.MAX_AMOUNT_CENTS + 1,
        10**30,
    ],
)
def test_check_amount_rejects(amount: object):
    with pytest.raises(ValidationFailed) as info:
        billing.check_amount(amount)
    assert info.value.status == 422
    assert info.value.details == [
        {"field": "amount_cents", "message": info.value.details[0]["message"]}
    ]


def test_check_amount_names_the_given_field():
    with pytest.raises(ValidationFailed) as info:
        billing.check_amount(0, field="credit_limit_cents")
    assert info.value.details[0]["field"] == "credit_limit_cents"


# --- backoff ------------------------------------------------------------------------------------
def job_type(base: int, cap: int, strategy: str = "exponential") -> SimpleNamespace:
    return SimpleNamespace(backoff_base_ms=base, backoff_max_ms=cap, backoff_strategy=strategy)


def test_fixed_backoff_waits_the_base_every_time():
    jt = job_type(750, 300_000, "fixed")
    assert {jobs.backoff_ms(jt, n) for n in range(1, 20)} == {750}


def test_delay_ms_is_the_relative_form_of_run_at():
    before = datetime.now(UTC)
    at = jobs.resolve_run_at(None, 5_000, 60_000)
    assert at is not None and timedelta(seconds=4.9) < at - before < timedelta(seconds=6)
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert jobs.resolve_run_at(when, None, 60_000) == when
    assert jobs.resolve_run_at(None, None, 60_000) is None
    for bad_run_at, delay in ((when, 1), (None, 60_001), (None, -1)):
        with pytest.raises(ValidationFailed) as err:
            jobs.resolve_run_at(bad_run_at, delay, 60_000)
        assert err.value.details[0]["field"] == "delay_ms"


@pytest.mark.parametrize("items", [None, "x", {}, [], list(range(11))])
def test_batch_items_must_be_a_list_of_1_to_the_limit(items):
    data = {} if items is None else {"items": items}
    with pytest.raises(ValidationFailed) as err:
        jobs.check_batch_items(data, 10)
    assert err.value.details[0]["field"] == "input_data.items"
    jobs.check_batch_items({"items": list(range(10))}, 10)


@pytest.mark.parametrize(
    ("base", "cap", "attempt"),
    [
        (1000, 300_000, 1),
        (1000, 300_000, 2),
        (1000, 300_000, 5),
        (1000, 300_000, 30),  # capped
        (1000, 300_000, 500),  # huge exponent still capped, no overflow
        (3, 300_000, 1),  # odd ceiling
        (1, 1, 4),
        (5000, 10, 2),  # cap below base
        (1000, 300_000, 0),  # defensive: attempt 0 behaves like attempt 1
    ],
)
def test_backoff_is_between_half_and_full_ceiling(base: int, cap: int, attempt: int):
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    values = {jobs.backoff_ms(job_type(base, cap), attempt) for _ in range(300)}
    assert all(isinstance(v, int) for v in values)
    assert min(values) >= ceiling // 2
    assert max(values) <= ceiling


def test_backoff_grows_with_attempts_until_the_cap():
    jt = job_type(1000, 8000)
    assert max(jobs.backoff_ms(jt, 1) for _ in range(200)) <= 1000
    assert min(jobs.backoff_ms(jt, 3) for _ in range(200)) >= 2000
    assert min(jobs.backoff_ms(jt, 20) for _ in range(200)) >= 4000
    assert max(jobs.backoff_ms(jt, 20) for _ in range(200)) <= 8000


def test_backoff_has_jitter():
    jt = job_type(10_000, 300_000)
    assert len({jobs.backoff_ms(jt, 3) for _ in range(50)}) > 1


@pytest.mark.parametrize(("base", "cap"), [(0, 300_000), (0, 0), (1000, 0)])
def test_backoff_zero_when_base_or_cap_is_zero(base: int, cap: int):
    assert {jobs.backoff_ms(job_type(base, cap), n) for n in range(1, 10)} == {0}


# --- idempotency fingerprint --------------------------------------------------------------------
def fp(body, method="POST", path="/jobs"):
    return idempotency.fingerprint(method, path, body)


def test_fingerprint_is_stable_under_key_order():
    customer = uuid.uuid4()
    a = {
        "customer_id": customer,
        "input_data": {"a": 1, "b": {"x": [1, 2], "y": None}},
        "priority": None,
    }
    b = {
        "priority": None,
        "input_data": {"b": {"y": None, "x": [1, 2]}, "a": 1},
        "customer_id": customer,
    }
    assert fp(a) == fp(b)
    assert len(fp(a)) == 64
    int(fp(a), 16)  # hex


def test_fingerprint_changes_with_content_method_and_path():
    base = {"input_data": {"a": 1}, "priority": None}
    assert fp(base) != fp({**base, "input_data": {"a": 2}})
    assert fp(base) != fp({**base, "priority": "high"})
    assert fp(base) != fp({**base, "input_data": {"a": "1"}})
    assert fp(base) != fp(base, path="/customers/x/wallet/top-ups")
    assert fp(base) != fp(base, method="PUT")


def test_fingerprint_accepts_uuids_and_datetimes():
    when = datetime(2030, 1, 1, tzinfo=UTC)
    body = {"customer_id": uuid.UUID(int=1), "run_at": when}
    assert fp(body) == fp(dict(body))


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9", "nl\n"])
def test_idempotency_key_must_be_printable_ascii_up_to_255(key: str):
    with pytest.raises(ValidationFailed) as err:
        idempotency.check_key(key)
    assert err.value.details[0]["field"] == "Idempotency-Key"


def test_idempotency_key_of_255_printable_characters_is_accepted():
    key = ("A-z 0~!" * 40)[:255]
    assert idempotency.check_key(key) == key


# --- cursors ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "created_at",
    [
        datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_cursor_round_trip(created_at: datetime):
    job_id = uuid.uuid4()
    cursor = pagination.encode_cursor(SimpleNamespace(created_at=created_at, id=job_id))
    assert isinstance(cursor, str)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor  # URL-safe
    decoded_at, decoded_id = pagination.decode_cursor(cursor)
    assert decoded_at == created_at
    assert decoded_at.utcoffset() == created_at.utcoffset()
    assert decoded_id == job_id


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "%%%",
        "",
        "x" * 3,
        "bm90IGEgY3Vyc29y",  # base64 of "not a cursor"
        "MjAyNi0wMS0wMXxub3QtYS11dWlk",  # base64 of "2026-01-01|not-a-uuid"
        "bm90LWEtZGF0ZXwwMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA",  # "not-a-date|<uuid>"
        "__8",  # decodes to non-UTF-8 bytes
    ],
)
def test_garbage_cursor_is_a_validation_error(cursor: str):
    with pytest.raises(ValidationFailed) as info:
        pagination.decode_cursor(cursor)
    assert info.value.status == 422
    assert info.value.details[0]["field"] == "cursor"


# --- emails -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("  bob@example.org  ", "bob@example.org"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
    ],
)
def test_normalize_email_lower_cases(raw: str, expected: str):
    assert tenants.normalize_email(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "plainaddress",
        "@example.com",
        "alice@",
        "alice@example",
        "alice@@example.com",
        "al ice@example.com",
        "alice@exa mple.com",
        "a" * 320 + "@example.com",
    ],
)
def test_normalize_email_rejects_bad_addresses(raw: str):
    with pytest.raises(ValidationFailed) as info:
        tenants.normalize_email(raw)
    assert info.value.details[0]["field"] == "email"


# --- config parsers -----------------------------------------------------------------------------
def test_int_parser_bounds_and_types():
    parse = config._int(1, 10)
    assert parse("7", "K") == 7
    assert parse(1, "K") == 1
    assert parse(10, "K") == 10
    for bad in (0, 11, "x", None, True, "1.5"):
        with pytest.raises(ConfigError, match=r"^K: "):
            parse(bad, "K")


def test_float_parser():
    parse = config._float(0.1, 10)
    assert parse("2.5", "K") == 2.5
    assert parse(3, "K") == 3.0
    for bad in ("soon", None, 0.0, 11, "nan", "inf"):
        with pytest.raises(ConfigError, match=r"^K: "):
            parse(bad, "K")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, True),
        (False, False),
        ("1", True),
        ("true", True),
        (" Yes ", True),
        ("ON", True),
        ("0", False),
        ("false", False),
        ("no", False),
        ("off", False),
    ],
)
def test_bool_parser(value: object, expected: bool):
    assert config._bool(value, "K") is expected


@pytest.mark.parametrize("value", ["maybe", "", "2", 3])
def test_bool_parser_rejects(value: object):
    with pytest.raises(ConfigError, match=r"^K: "):
        config._bool(value, "K")


def test_str_parser_strips_and_rejects_non_strings():
    assert config._str("  a  ", "K") == "a"
    with pytest.raises(ConfigError, match=r"^K: "):
        config._str(5, "K")


def test_choice_parser_normalises_case():
    assert config._choice("text", "json")("JSON", "K") == "json"
    assert config._choice("DEBUG", "INFO", upper=True)("debug", "K") == "DEBUG"
    with pytest.raises(ConfigError, match=r"^K: "):
        config._choice("text", "json")("xml", "K")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sqlite://var/x.sqlite3", "sqlite://var/x.sqlite3"),
        ("sqlite://:memory:", "sqlite://:memory:"),
        ("postgres://u@h/d", "postgres://u@h/d"),
        ("postgresql://u:p@h:5/d", "postgres://u:p@h:5/d"),
        ("  postgresql://u@h/d  ", "postgres://u@h/d"),
        ("", ""),
    ],
)
def test_database_url_parser(value: str, expected: str):
    assert config._database_url(value, "K") == expected


@pytest.mark.parametrize("value", ["mysql://h/d", "h:5432/d", "http://x"])
def test_database_url_parser_rejects(value: str):
    with pytest.raises(ConfigError, match=r"^K: unsupported scheme"):
        config._database_url(value, "K")


def test_broker_url_parser():
    assert config._broker_url("memory://", "K") == "memory://"
    assert config._broker_url("redis://h:6379/0", "K") == "redis://h:6379/0"
    assert config._broker_url("rediss://h:6380/0", "K") == "rediss://h:6380/0"
    for bad in ("amqp://h", "", "redis"):
        with pytest.raises(ConfigError, match=r"^K: "):
            config._broker_url(bad, "K")


def test_job_types_parser():
    assert config._job_types("b, a ,,a", "K") == ("a", "b")
    assert config._job_types(["x", " y "], "K") == ("x", "y")
    assert config._job_types("", "K") == ()
    with pytest.raises(ConfigError, match=r"^K: "):
        config._job_types(5, "K")
