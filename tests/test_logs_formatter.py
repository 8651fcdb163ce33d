"""The JSON formatter: one object per record, trace ids, exceptions, redaction at any depth."""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from exporter.http.trace import TraceContext, _current
from exporter.logs.formatter import REDACTED, JsonFormatter, scrub_text


def record(msg: str = "hello", *args: Any, level: int = logging.INFO, **extra: Any
           ) -> logging.LogRecord:
    rec = logging.LogRecord("shop.orders", level, __file__, 1, msg, args or None, None)
    rec.__dict__.update(extra)
    return rec


def render(rec: logging.LogRecord, **options: Any) -> dict[str, Any]:
    line = JsonFormatter("shop", "prod", **options).format(rec)
    assert "\n" not in line
    parsed: dict[str, Any] = json.loads(line)
    return parsed


def test_a_line_has_the_documented_fields() -> None:
    doc = render(record("user %s paid", "bob", order_id=42))
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", doc["ts"])
    assert doc["level"] == "info" and doc["logger"] == "shop.orders"
    assert doc["message"] == "user bob paid"
    assert (doc["service"], doc["env"], doc["trace_id"]) == ("shop", "prod", None)
    assert doc["order_id"] == 42


def test_uvicorns_coloured_copy_of_the_message_is_left_out() -> None:
    doc = render(record("Uvicorn running on %s", "http://x",
                        color_message="Uvicorn running on \x1b[1m%s\x1b[0m"))
    assert doc["message"] == "Uvicorn running on http://x"
    assert "color_message" not in doc


def test_the_current_request_trace_id_is_included() -> None:
    token = _current.set(TraceContext("a" * 32, "b" * 16))
    try:
        doc = render(record())
    finally:
        _current.reset(token)
    assert doc["trace_id"] == "a" * 32 and doc["span_id"] == "b" * 16


def test_exceptions_give_type_message_and_stack() -> None:
    try:
        raise KeyError("missing")
    except KeyError:
        rec = record(level=logging.ERROR)
        rec.exc_info = sys.exc_info()
    doc = render(rec)
    assert doc["exc_type"] == "KeyError"
    assert doc["exc_message"] == "'missing'"
    assert "Traceback" in doc["stack"] and "raise KeyError" in doc["stack"]


def test_values_that_are_not_json_become_repr_and_never_raise() -> None:
    class Odd:
        def __repr__(self) -> str:
            return "<Odd>"

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    circular: dict[str, Any] = {}
    circular["self"] = circular
    doc = render(record(odd=Odd(), broken=Broken(), keys={(1, 2): "tuple key"}, loop=circular))
    assert doc["odd"] == "<Odd>"
    assert doc["broken"] == "<unrepresentable Broken>"
    assert doc["keys"] == {"(1, 2)": "tuple key"}
    assert "loop" in doc


def test_bad_format_arguments_do_not_crash_the_caller() -> None:
    doc = render(record("%d items", "not a number"))
    assert "%d items" in doc["message"]


def test_secret_keys_are_redacted_at_any_depth() -> None:
    doc = render(record(
        headers={"Authorization": "Bearer abc123xyz", "Cookie": "sid=1", "accept": "json"},
        config={"db": {"DSN": "postgres://u:pw@h/db", "pool": [{"password": "hunter2"}]}},
        api_key="k-123", user_token="t-1",
    ))
    assert doc["headers"] == {"Authorization": REDACTED, "Cookie": REDACTED, "accept": "json"}
    assert doc["config"]["db"]["DSN"] == REDACTED
    assert doc["config"]["db"]["pool"][0]["password"] == REDACTED
    assert doc["api_key"] == REDACTED and doc["user_token"] == REDACTED


def test_configured_redaction_keys_add_to_the_built_in_ones() -> None:
    doc = render(record("ssn=123-45-6789 given", ssn="123-45-6789", password="pw",
                        db_pwd="p2", private_key="pk", session_id="s1", credentials="c1",
                        ), redact_keys=["ssn"])
    assert doc["ssn"] == REDACTED and doc["message"] == "ssn=[redacted] given"
    # The error store's keys are secrets in the log lines too.
    for key in ("password", "db_pwd", "private_key", "session_id", "credentials"):
        assert doc[key] == REDACTED, key


def test_secrets_inside_free_text_are_scrubbed() -> None:
    text = ("connect to postgres://app:hunter2@db:5432/shop failed; "
            "sent Authorization: Bearer eyJhbGciOi.payload; password=letmein")
    scrubbed = scrub_text(text)
    for secret in ("hunter2", "eyJhbGciOi", "letmein"):
        assert secret not in scrubbed
    assert "postgres://app:[redacted]@db:5432/shop" in scrubbed
    doc = render(record(text))
    assert "hunter2" not in doc["message"]


def test_each_handler_sharing_the_formatter_formats_once() -> None:
    formatter = JsonFormatter()
    rec = record()
    first = formatter.format(rec)
    rec.msg = "changed"
    assert formatter.format(rec) is first
    assert JsonFormatter().format(rec) != first  # another formatter does its own


def test_secrets_in_reprs_and_prefixed_keys_are_scrubbed() -> None:
    from exporter.logs.formatter import scrub_text

    text = scrub_text("args=({'password': 'hunter2', 'db_password': \"s3cr3t\"},) DB_PASSWORD=pw1")
    assert "hunter2" not in text and "s3cr3t" not in text and "pw1" not in text
    assert "'password': '[redacted]'" in text
    assert scrub_text("order 42: paid, total=12.5") == "order 42: paid, total=12.5"


def test_a_service_of_another_type_in_extra_is_written_as_text() -> None:
    assert render(record(service=123))["service"] == "123"
    assert render(record(service={"name": "billing"}))["service"] == "{'name': 'billing'}"
    assert render(record(service=""))["service"] == "shop"


def _strict_json(line: str) -> dict[str, Any]:
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} is not JSON")

    parsed: dict[str, Any] = json.loads(line, parse_constant=refuse)
    return parsed


def test_nan_and_infinity_are_written_as_null_so_every_line_is_json() -> None:
    nan, inf = float("nan"), float("inf")
    formatter = JsonFormatter("shop", "prod")
    doc = _strict_json(formatter.format(record(x=nan, y=inf, nested={"z": -inf, "ok": 1.5})))
    assert (doc["x"], doc["y"], doc["nested"]) == (None, None, {"z": None, "ok": 1.5})
    line = formatter.render_fields(0.0, "info", "ingest", {"message": "m", "v": [nan, 2.0]})
    assert _strict_json(line)["v"] == [None, 2.0]


def test_milliseconds_are_the_nearest_not_truncated_float_error() -> None:
    formatter = JsonFormatter()
    assert formatter.timestamp(1700000000.001) == "2023-11-14T22:13:20.001Z"
    assert formatter.timestamp(1700000000.9996) == "2023-11-14T22:13:21.000Z"


def test_threads_sharing_the_clock_never_pair_a_date_with_another_second() -> None:
    import threading

    formatter = JsonFormatter()
    moments = (1700000000.5, 1700086401.5)  # two different days
    expected = {m: formatter.timestamp(m) for m in moments}
    wrong: list[str] = []
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def stamp_many(offset: int) -> None:
        for i in range(20_000):
            moment = moments[(i + offset) % 2]
            if formatter.timestamp(moment) != expected[moment]:
                wrong.append(formatter.timestamp(moment))

    try:
        threads = [threading.Thread(target=stamp_many, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert wrong == []


def test_an_exception_with_a_broken_str_keeps_the_rest_of_the_record() -> None:
    class Broken(Exception):
        def __str__(self) -> str:
            raise RuntimeError("broken")

    try:
        raise Broken()
    except Broken:
        rec = record("failed for order %s", 7, level=logging.ERROR, order_id=7)
        rec.exc_info = sys.exc_info()
    token = _current.set(TraceContext("a" * 32, "b" * 16))
    try:
        doc = render(rec)
    finally:
        _current.reset(token)
    assert "format_error" not in doc
    assert doc["message"] == "failed for order 7" and doc["order_id"] == 7
    assert doc["trace_id"] == "a" * 32
    assert doc["exc_type"] == "Broken" and doc["exc_message"] == "<unprintable Broken>"
    assert "raise Broken()" in doc["stack"]


def test_secrets_deeper_than_any_limit_and_in_any_mapping_are_redacted() -> None:
    from collections import ChainMap
    from types import MappingProxyType

    from starlette.datastructures import Headers

    deep: dict[str, Any] = {"password": "DEEP-SECRET"}
    for _ in range(30):
        deep = {"a": deep}
    headers = Headers(raw=[(b"cookie", b"sid=COOKIE-SECRET"), (b"x-api-key", b"HDR-SECRET"),
                           (b"accept", b"json")])
    line = JsonFormatter().format(record(
        deep=deep, headers=headers, proxy=MappingProxyType({"token": "PROXY-SECRET"}),
        chain=ChainMap({"secret": "CHAIN-SECRET"}),
    ))
    for secret in ("DEEP-SECRET", "COOKIE-SECRET", "HDR-SECRET", "PROXY-SECRET", "CHAIN-SECRET"):
        assert secret not in line, secret
    doc = json.loads(line)
    assert doc["headers"] == {"cookie": REDACTED, "x-api-key": REDACTED, "accept": "json"}


def test_free_text_is_scrubbed_for_every_secret_key_and_form() -> None:
    text = scrub_text(
        "connect postgres://bob:DBPASS-SECRET@db/x with password=PW2-SECRET and "
        "Authorization: Bearer BEARER-SECRET-XYZ; api_key: AK2-SECRET; cookie: sid=COOKIE2-SECRET; "
        'dsn=https://DSNKEY@sentry.io/1 secret="spaced secret words" '
        "sentry at https://PUBLICKEY@o1.ingest.sentry.io/42 authorization=AUTH-SECRET"
    )
    for secret in ("DBPASS", "PW2", "BEARER-SECRET", "AK2", "COOKIE2", "DSNKEY", "spaced",
                   "secret words", "PUBLICKEY", "AUTH-SECRET"):
        assert secret not in text, secret
    assert "postgres://bob:[redacted]@db/x" in text
    assert 'secret="[redacted]"' in text and "https://[redacted]@o1.ingest.sentry.io/42" in text
