"""`LokiConfig`: where and how the Loki shipper pushes, with the defaults of docs/logs.md."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class LokiConfig:
    """Where and how the shipper pushes; defaults follow docs/logs.md."""

    url: str
    spool_dir: Path
    service: str = "app"
    env: str = "development"
    static_labels: dict[str, str] = field(default_factory=dict)
    tenant: str = ""
    username: str = ""
    password: str = ""
    bearer_token: str = ""
    batch_lines: int = 1000
    batch_bytes: int = 1 << 20
    batch_wait: float = 1.0
    queue_lines: int = 100_000
    spool_max_bytes: int = 512 << 20
    close_timeout: float = 5.0
    push_timeout: float = 5.0
    backoff_base: float = 0.5
    backoff_max: float = 30.0
