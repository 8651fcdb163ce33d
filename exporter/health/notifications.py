"""Alertmanager notifications the sidecar received: the newest N, in memory, thread-safe."""

from __future__ import annotations

import threading
from collections import deque
from datetime import datetime

from pydantic import BaseModel, Field


class NotifiedAlert(BaseModel):
    """One alert of a notification, as Alertmanager sent it."""

    status: str
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None = Field(description="null while firing")
    generator_url: str
    fingerprint: str


class ReceivedNotification(BaseModel):
    """One webhook call from Alertmanager (payload version 4), with when it arrived."""

    received_at: datetime
    status: str = Field(description="firing or resolved (of the whole group)")
    receiver: str
    group_key: str
    group_labels: dict[str, str]
    common_labels: dict[str, str]
    common_annotations: dict[str, str]
    external_url: str
    truncated_alerts: int
    alerts: list[NotifiedAlert]


class NotificationStore:
    """The last `capacity` notifications; older ones fall off (bounded memory)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        self._items: deque[ReceivedNotification] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, notification: ReceivedNotification) -> None:
        """Keep `notification`, dropping the oldest when full."""
        with self._lock:
            self._items.append(notification)

    def newest_first(self) -> list[ReceivedNotification]:
        """Every kept notification, newest first."""
        with self._lock:
            return list(reversed(self._items))
