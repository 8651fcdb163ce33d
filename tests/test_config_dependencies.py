"""Dependency and queue URLs: parsing, kinds, and passwords kept out of every message."""

from __future__ import annotations

import pytest

from exporter.config import SettingsError, load_settings
from exporter.config.dependencies import (
    parse_dependency,
    parse_dependency_map,
    parse_queue,
    redact_url,
    scrub,
)

SECRET = "s3cr%2Ft-pw"


def test_kinds_follow_the_url_scheme() -> None:
    assert parse_dependency("cache", "redis://127.0.0.1:6379/0").kind == "redis"
    assert parse_dependency("db", "postgres://u@h/db").kind == "postgresql"
    assert parse_dependency("db", "mariadb://root@h:3306/test").kind == "mysql"
    assert parse_dependency("f", "sqlite:///tmp/x.db").kind == "sqlite"
    assert parse_dependency("f", "duckdb:///tmp/x.duckdb").kind == "duckdb"


def test_redact_hides_the_password_only() -> None:
    assert redact_url(f"postgresql://app:{SECRET}@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_scrub_removes_raw_and_decoded_password() -> None:
    dep = parse_dependency("db", f"postgresql://app:{SECRET}@db:5432/x")
    text = f"failed for s3cr/t-pw and {SECRET}"
    assert "s3cr" not in scrub(text, dep.secrets)


def test_redis_queue_url_gives_db_and_queue() -> None:
    queue = parse_queue("redis://127.0.0.1:6379/2/celery")
    assert (queue.backend, queue.queue, queue.url) == ("redis", "celery", "redis://127.0.0.1:6379/2")


def test_amqp_queue_url_gives_vhost_and_queue() -> None:
    queue = parse_queue("amqp://guest:guest@127.0.0.1:5672/%2F/tasks")
    assert (queue.backend, queue.queue, queue.vhost) == ("rabbitmq", "tasks", "/")
    assert queue.url == "amqp://guest:guest@127.0.0.1:5672/%2F"


@pytest.mark.parametrize(
    "url",
    ["redis://h:6379/celery", "amqp://h/tasks", "kafka://h/t", "redis:///0/q"],
)
def test_bad_queue_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError):
        parse_queue(url)


def test_dependency_map_accepts_json_and_pairs() -> None:
    assert parse_dependency_map('{"a": "redis://h/0"}') == {"a": "redis://h/0"}
    assert parse_dependency_map("a=redis://h/0, b=sqlite:///x.db?mode=ro") == {
        "a": "redis://h/0", "b": "sqlite:///x.db?mode=ro",
    }


def test_settings_errors_name_the_variable_and_hide_the_password() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(dependencies=f'{{"db": "oracle://app:{SECRET}@h/x"}}')
    message = str(caught.value)
    assert message.startswith("EXPORTER_DEPENDENCIES:")
    assert "oracle" in message and SECRET not in message and "s3cr" not in message

    with pytest.raises(SettingsError) as caught:
        load_settings(queues=f"amqp://guest:{SECRET}@h:5672/tasks")
    assert str(caught.value).startswith("EXPORTER_QUEUES:")
    assert "s3cr" not in str(caught.value)


def test_settings_read_dependencies_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPORTER_DEPENDENCIES", "cache=redis://127.0.0.1:6379/0")
    monkeypatch.setenv("EXPORTER_QUEUES", "redis://127.0.0.1:6379/0/celery")
    settings = load_settings()
    assert settings.dependencies == {"cache": "redis://127.0.0.1:6379/0"}
    assert settings.queues == ["redis://127.0.0.1:6379/0/celery"]


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:Pa/ss9secret@127.0.0.1:5432/test",
        "mysql://root:Pa?ss9secret@127.0.0.1:3306/test",
        "redis://:Pa#ss9secret@127.0.0.1:6379/0",
        "postgresql://app:Pa@ss/9secret@127.0.0.1:5432/test",
    ],
)
def test_unencoded_delimiter_in_a_password_is_refused_without_showing_it(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_dependency("db", url)
    message = str(caught.value)
    assert "percent-encode" in message and "%2F" in message
    assert "9secret" not in message and "Pa" not in message
    assert "9secret" not in redact_url(url)
    with pytest.raises(SettingsError) as settings_error:
        load_settings(dependencies=f"db={url}")
    assert "9secret" not in str(settings_error.value)


def test_unencoded_delimiter_in_a_queue_password_is_refused_without_showing_it() -> None:
    for url in ("amqp://guest:Pa/ss9secret@127.0.0.1:5672/%2F/q",
                "redis://:Pa?ss9secret@127.0.0.1:6379/0/q"):
        with pytest.raises(ValueError) as caught:
            parse_queue(url)
        assert "percent-encode" in str(caught.value) and "9secret" not in str(caught.value)


def test_a_file_path_may_hold_an_at_sign() -> None:
    assert parse_dependency("f", "sqlite:///data/app@2.db").kind == "sqlite"
    assert redact_url("sqlite:///data/app@2.db") == "sqlite:///data/app@2.db"


@pytest.mark.parametrize(
    ("url", "shown", "secret"),
    [
        ("postgresql://postgres@127.0.0.1:5432/test?password=QuerySecret1",
         "postgresql://postgres@127.0.0.1:5432/test?password=***", "QuerySecret1"),
        ("redis://127.0.0.1:6379/0?password=Redis%21QS2&socket_keepalive=true",
         "redis://127.0.0.1:6379/0?password=***&socket_keepalive=true", "Redis!QS2"),
        ("postgresql://u@h/db?sslmode=require&sslpassword=KeyQS3",
         "postgresql://u@h/db?sslmode=require&sslpassword=***", "KeyQS3"),
        ("mysql://u:UserPw4@h/db?passwd=QS4", "mysql://u:***@h/db?passwd=***", "QS4"),
    ],
)
def test_password_query_parameters_are_masked_and_scrubbed(
    url: str, shown: str, secret: str
) -> None:
    dep = parse_dependency("db", url)
    assert redact_url(url) == shown and dep.safe_url == shown
    assert scrub(f"driver said {secret}", dep.secrets) == "driver said ***"


def test_queue_query_passwords_are_masked() -> None:
    queue = parse_queue("amqp://guest@127.0.0.1:5672/%2F/q1?password=AmqpQS4")
    assert "AmqpQS4" not in queue.safe_url and "password=***" in queue.safe_url
    assert scrub("AmqpQS4", queue.secrets) == "***"


@pytest.mark.parametrize("port", ["99999", "abc", "0"])
def test_a_bad_port_is_refused_naming_the_dependency(port: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(dependencies=f"cache=redis://:Pw-{port}@127.0.0.1:{port}/0")
    message = str(caught.value)
    assert message.startswith("EXPORTER_DEPENDENCIES: dependency 'cache': port")
    assert "1 to 65535" in message and f"Pw-{port}" not in message
    with pytest.raises(ValueError, match="port"):
        parse_queue(f"redis://127.0.0.1:{port}/0/celery")


@pytest.mark.parametrize(
    "value", ["db=redis://h:6379/0,db=redis://h2:6379/0", '{"db": "redis://h/0", "db": "redis://h2/0"}']
)
def test_a_dependency_name_given_twice_is_refused(value: str) -> None:
    with pytest.raises(SettingsError, match="dependency name 'db' is given twice"):
        load_settings(dependencies=value)


def test_two_queues_with_the_same_backend_and_name_are_refused_naming_both() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(queues="redis://:Pw1@h:6379/0/celery,redis://h:6379/1/celery")
    message = str(caught.value)
    assert message.startswith("EXPORTER_QUEUES: ")
    assert "'redis://:***@h:6379/0/celery' and 'redis://h:6379/1/celery'" in message
    assert "Pw1" not in message


def test_redis_queue_url_keeps_its_query_options() -> None:
    queue = parse_queue("rediss://:pw@h:6380/0/celery?ssl_cert_reqs=none")
    assert queue.url == "rediss://:pw@h:6380/0?ssl_cert_reqs=none"
    assert queue.queue == "celery"
