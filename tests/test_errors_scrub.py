"""The scrubber the error store, Sentry and the log lines share: keys, mappings, free text."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from starlette.datastructures import Headers

from exporter.errors.scrub import FILTERED, Scrubber, is_secret_key, scrub_text, scrub_value
from exporter.errors.secret_names import HINTS, SECRET_ENDINGS, SECRET_WORDS, SecretNames


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


SECRET_NAMES = (
    "key", "passphrase", "secret_key", "access_key", "private_key", "credential", "credentials",
    "session", "signature", "api_key", "apikey", "x-api-key", "client_secret", "refresh_token",
    "Authorization", "Proxy-Authorization", "Cookie", "Set-Cookie", "XSRF-TOKEN", "PHPSESSID",
    "connect.sid", "sessionId", "APIKey", "privateKey", "AWS_SECRET_ACCESS_KEY", "accessKeyId",
    "X-Amz-Signature", "X-Amz-Credential", "db_pass", "DB_PASSWORD", "sig", "stripe_key",
    "password_hash", "id_token", "jsessionid", "csrf",
)
BENIGN_NAMES = (
    "keyboard", "author", "monkey", "tokenizer", "sessionless", "keyword", "signature_version",
    "public_key", "primary_key", "cache_key", "sort_key", "key_id", "keyName", "hotkey", "keys",
    "passenger", "bypass", "pass_through", "authority", "authored_by", "cookbook",
    "session_count", "max_tokens", "prompt_tokens", "token_type", "password_policy",
    "password_min_length", "auth_method", "secretary", "sessions", "X-Amz-SignedHeaders",
    "X-Amz-Algorithm", "turkey", "whiskey", "design", "signal",
)


def test_names_are_secrets_by_whole_words_not_by_substrings() -> None:
    assert [name for name in SECRET_NAMES if not is_secret_key(name)] == []
    assert [name for name in BENIGN_NAMES if is_secret_key(name)] == []


def test_every_secret_word_holds_a_hint_free_text_is_searched_for() -> None:
    words = (*SECRET_ENDINGS, *SECRET_WORDS, "key", "pass")
    assert [word for word in words if not any(hint in word for hint in HINTS)] == []


def test_configured_names_match_whole_words_and_word_endings() -> None:
    names = SecretNames(["ssn", "card-number"])
    assert all(names.is_secret(n) for n in ("ssn", "user_ssn", "userSsn", "userssn",
                                            "cardNumber", "credit_card_number"))
    assert not any(names.is_secret(n) for n in ("lessons", "ssn_count", "card", "number"))


def test_tokens_jwts_aws_key_ids_and_private_keys_are_replaced_wherever_they_are() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"
    pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7bq\n-----END RSA PRIVATE KEY-----"
    text = scrub_text(f"got {jwt} from AKIAIOSFODNN7EXAMPLE with {pem} and "
                      "Basic dXNlcjpwYXNzd29yZA== then -----BEGIN PRIVATE KEY-----\nMIIcut")
    assert text == ("got [Filtered] from [Filtered] with -----BEGIN RSA PRIVATE KEY-----"
                    "[Filtered]-----END RSA PRIVATE KEY----- and Basic [Filtered] then "
                    "-----BEGIN PRIVATE KEY-----[Filtered]-----END PRIVATE KEY-----")


def test_words_after_bearer_basic_and_token_stay_unless_they_look_like_credentials() -> None:
    prose = "Basic setup done; the token expired; bearer bonds; tokenizer ok"
    assert scrub_text(prose) == prose
    assert scrub_text("token ghp_16C7e42F292c6912E7710c838347Ae178B4a") == "token [Filtered]"


def test_a_pair_that_is_no_secret_does_not_hide_one_in_its_value() -> None:
    assert scrub_text("monkey:password=x1 keyboard=us") == "monkey:password=[Filtered] keyboard=us"
    assert scrub_text("keyword: 'open passphrase=p2") == "keyword: 'open passphrase=[Filtered]"
    assert scrub_text("GET /maps?key=K3&page=2&sig=S4 and ?keyword=shoes") == (
        "GET /maps?key=[Filtered]&page=2&sig=[Filtered] and ?keyword=shoes")


def test_the_verdicts_of_names_are_bounded() -> None:
    scrubber = Scrubber(FILTERED)
    for index in range(25_000):
        scrubber.is_secret(f"field_{index}")
    assert len(scrubber._verdicts) <= 10_000
    assert scrubber.is_secret("api_key") and not scrubber.is_secret("keyboard")
