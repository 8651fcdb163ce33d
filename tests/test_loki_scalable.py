"""loki/loki-scalable.yml: Loki in simple scalable mode on S3-compatible storage, checked for
the structure it relies on as loki/loki.yml is (Loki cannot run here), and kept equal to
loki.yml where both must agree: limits, retention, schema."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEXT = (ROOT / "loki" / "loki-scalable.yml").read_text()
SCALABLE: dict[str, Any] = yaml.safe_load(TEXT)
SINGLE: dict[str, Any] = yaml.safe_load((ROOT / "loki" / "loki.yml").read_text())
# Loki 3.x's top-level configuration blocks (its configuration reference).
LOKI_BLOCKS = {
    "target", "auth_enabled", "ballast_bytes", "server", "distributor", "querier",
    "query_scheduler", "frontend", "query_range", "ruler", "ruler_storage", "ingester_client",
    "ingester", "pattern_ingester", "index_gateway", "bloom_build", "bloom_gateway",
    "storage_config", "chunk_store_config", "schema_config", "compactor", "limits_config",
    "frontend_worker", "table_manager", "memberlist", "kafka_config", "runtime_config",
    "operational_config", "tracing", "analytics", "common", "shutdown_delay",
    "metrics_namespace",
}


def test_only_loki_blocks_at_the_top() -> None:
    assert set(SCALABLE) <= LOKI_BLOCKS
    assert set(SINGLE) <= LOKI_BLOCKS  # the check knows the single-binary file's blocks too


def test_it_stores_on_s3_with_the_same_tsdb_v13_schema() -> None:
    (period,) = SCALABLE["schema_config"]["configs"]
    (single,) = SINGLE["schema_config"]["configs"]
    assert (period["store"], period["object_store"], period["schema"]) == ("tsdb", "s3", "v13")
    assert {k: v for k, v in period.items() if k != "object_store"} == {
        k: v for k, v in single.items() if k != "object_store"}
    assert period["index"]["period"] == "24h"
    shipper = SCALABLE["storage_config"]["tsdb_shipper"]
    for key in ("active_index_directory", "cache_location"):
        assert shipper[key].startswith(SCALABLE["common"]["path_prefix"] + "/")


def test_s3_settings_and_secrets_come_from_the_environment() -> None:
    s3 = SCALABLE["common"]["storage"]["s3"]
    assert set(s3) == {"endpoint", "region", "bucketnames", "access_key_id",
                       "secret_access_key", "s3forcepathstyle", "insecure"}
    for key in ("endpoint", "region", "bucketnames", "access_key_id", "secret_access_key"):
        assert re.fullmatch(r"\$\{LOKI_S3_[A-Z_]+\}", s3[key]), key
    assert s3["s3forcepathstyle"] is True and s3["insecure"] is False
    # -config.expand-env=true is what fills them in: the header says to start with it.
    starts = [line for line in TEXT.splitlines() if line.startswith("#   loki -config.file")]
    assert [line.split()[-1] for line in starts] == [
        "-target=write", "-target=read", "-target=backend"]
    assert all("-config.expand-env=true" in line for line in starts)


def test_the_processes_find_each_other_and_replicate() -> None:
    common = SCALABLE["common"]
    assert common["ring"]["kvstore"]["store"] == "memberlist"
    assert common["replication_factor"] == 3
    (member,) = SCALABLE["memberlist"]["join_members"]
    assert member == "${LOKI_MEMBERLIST_JOIN}:7946"
    assert common["compactor_address"].startswith("http://")


def test_retention_runs_in_the_compactor_on_s3() -> None:
    compactor = SCALABLE["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "s3"
    assert compactor["working_directory"].startswith("/loki/")
    assert {k: v for k, v in compactor.items() if k != "delete_request_store"} == {
        k: v for k, v in SINGLE["compactor"].items() if k != "delete_request_store"}


def test_limits_are_loki_ymls() -> None:
    assert SCALABLE["limits_config"] == SINGLE["limits_config"]
    assert SCALABLE["server"]["http_listen_port"] == SINGLE["server"]["http_listen_port"]
    assert SCALABLE["auth_enabled"] is SINGLE["auth_enabled"]
    assert SCALABLE["ruler"]["alertmanager_url"] == SINGLE["ruler"]["alertmanager_url"]
    assert SCALABLE["analytics"] == {"reporting_enabled": False}
