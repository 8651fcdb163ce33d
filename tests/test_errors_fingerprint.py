"""Fingerprints: the same bug groups together, different bugs do not."""

from __future__ import annotations

import json

from exporter.errors.event import event_from_exception
from exporter.errors.fingerprint import normalise_message, stack_of


def _raised(fn: object, *args: object) -> BaseException:
    try:
        fn(*args)  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("expected an exception")


def charge(order_id: int) -> None:
    raise KeyError(f"order {order_id} at 0x7f3a2b1c not found ({order_id:08x}deadbeef)")


def refund(order_id: int) -> None:
    raise KeyError(f"order {order_id} at 0x7f3a2b1c not found ({order_id:08x}deadbeef)")


def parse(text: str) -> int:
    if text.startswith("-"):
        raise ValueError(f"negative amount {text}")  # one line...
    raise ValueError(f"bad amount {text}")  # ...or another: the same group


def recurse(depth: int) -> None:
    if depth == 0:
        raise RecursionError("bottom")
    recurse(depth - 1)


def test_message_normalisation_strips_numbers_ids_addresses_and_uuids() -> None:
    text = "user 42 (id 7d444840-9dc0-11d1-b245-5ffdce74fad2) at 0x7f3a2b1c3d, hash 9f86d081884c"
    assert normalise_message(text) == "user <n> (id <uuid>) at <addr>, hash <id>"


def test_the_same_bug_with_other_ids_has_one_fingerprint() -> None:
    first = event_from_exception(_raised(charge, 17))
    second = event_from_exception(_raised(charge, 90210))
    assert first.fingerprint == second.fingerprint
    assert len(first.fingerprint) == 32


def test_another_function_or_type_is_another_group() -> None:
    base = event_from_exception(_raised(charge, 1)).fingerprint
    assert event_from_exception(_raised(refund, 1)).fingerprint != base
    assert event_from_exception(_raised(parse, "x")).fingerprint != base


def test_line_numbers_do_not_matter_but_the_message_text_does() -> None:
    negative = event_from_exception(_raised(parse, "-5"))
    positive = event_from_exception(_raised(parse, "5"))
    assert negative.stack[-1].lineno != positive.stack[-1].lineno
    # Same frames, but "negative amount" and "bad amount" are different failures.
    assert negative.fingerprint != positive.fingerprint
    assert event_from_exception(_raised(parse, "-7")).fingerprint == negative.fingerprint


def test_recursion_depth_does_not_split_a_group() -> None:
    shallow = event_from_exception(_raised(recurse, 2))
    deep = event_from_exception(_raised(recurse, 20))
    assert shallow.fingerprint == deep.fingerprint


def test_library_frames_are_not_in_app() -> None:
    exc = _raised(json.loads, "{not json")
    frames = stack_of(exc.__traceback__)
    assert frames[0].module == __name__ and frames[0].in_app
    assert [frame.module for frame in frames if not frame.in_app][:1] == ["json"]
    event = event_from_exception(exc)
    assert event.culprit == f"{__name__}:_raised"


def test_secrets_in_the_message_are_scrubbed_before_fingerprinting() -> None:
    def connect(dsn: str) -> None:
        raise ConnectionError(f"cannot reach {dsn}; password=hunter2 token: abc123def")

    one = event_from_exception(_raised(connect, "postgresql://app:s3cr3t@db:5432/main"))
    two = event_from_exception(_raised(connect, "postgresql://app:other@db:5432/main"))
    for secret in ("s3cr3t", "hunter2", "abc123def"):
        assert secret not in one.message
    assert "postgresql://app:[Filtered]@db:5432/main" in one.message
    assert one.fingerprint == two.fingerprint


def test_an_unprintable_exception_is_still_captured() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    def fail() -> None:
        raise Unprintable()

    event = event_from_exception(_raised(fail))
    assert event.message == "<unprintable>"
    assert event.type.endswith("Unprintable")


def ping(depth: int) -> None:
    if depth == 0:
        raise RecursionError("bottom")
    pong(depth - 1)


def pong(depth: int) -> None:
    if depth == 0:
        raise RecursionError("bottom")
    ping(depth - 1)


def test_deep_direct_recursion_keeps_the_outer_frames_and_one_group() -> None:
    groups = {event_from_exception(_raised(recurse, depth)).fingerprint for depth in (3, 40, 70)}
    assert len(groups) == 1  # 70 frames: the stored stack (50) has lost _raised, the hash not
    deep = event_from_exception(_raised(recurse, 70))
    assert len(deep.stack) == 50 and deep.stack[0].function == "recurse"


def test_mutual_recursion_at_any_depth_and_parity_is_one_group() -> None:
    groups = {event_from_exception(_raised(ping, depth)).fingerprint
              for depth in (3, 4, 41, 80, 81)}
    assert len(groups) == 1


def test_quoted_names_and_emails_in_the_message_do_not_split_a_group() -> None:
    def lookup(key: str) -> None:
        raise KeyError(key)

    def notify(address: str) -> None:
        raise ValueError(f"cannot mail {address}: mailbox \"{address.split('@')[0]}\" is full")

    assert (event_from_exception(_raised(lookup, "alice")).fingerprint
            == event_from_exception(_raised(lookup, "bob")).fingerprint)
    assert (event_from_exception(_raised(notify, "ann@example.com")).fingerprint
            == event_from_exception(_raised(notify, "bo.b+x@mail.example.org")).fingerprint)
    assert normalise_message("no user 'alice' for ann@example.com") == "no user <str> for <email>"
