"""The scrubber the error store, Sentry and the log lines share: keys, mappings, free text."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from starlette.datastructures import Headers

from exporter.errors.scrub import FILTERED, is_secret_key, scrub_text, scrub_value


def test_any_mapping_at_any_depth_is_scrubbed() -> None:
    deep: dict[str, Any] = {"api_token": "DEEP"}
    for _ in range(40):
        deep = {"a": deep}
    scrubbed = scrub_value({
        "headers": Headers(raw=[(b"authorization", b"Bearer abcdef123456")]),
        "proxy": MappingProxyType({"session_id": "S1"}), "deep": deep, "tags": {"x", "y"},
    })
    assert scrubbed["headers"] == {"authorization": FILTERED}
    assert scrubbed["proxy"] == {"session_id": FILTERED}
    assert "DEEP" not in repr(scrubbed["deep"])
    assert sorted(scrubbed["tags"]) == ["x", "y"]


def test_quoted_values_go_whole_and_urls_keep_their_user() -> None:
    text = scrub_text('login failed: password="correct horse battery" for '
                      "postgresql://shop:p@ss/w0rd@db/shop and https://k3y@sentry.io/1")
    assert text == ('login failed: password="[Filtered]" for '
                    "postgresql://shop:[Filtered]@db/shop and https://[Filtered]@sentry.io/1")


def test_api_key_matches_with_a_dash_or_an_underscore() -> None:
    assert is_secret_key("X-Api-Key") and is_secret_key("api_key") and is_secret_key("APIKEY")
    assert scrub_text("api-key=K1 Api_Key: K2") == "api-key=[Filtered] Api_Key: [Filtered]"
