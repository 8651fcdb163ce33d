"""One health check's outcome (`Check`) and how statuses compare; the checks are made in
checks.py (from the monitor) and sentry_check.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Status = Literal["healthy", "degraded", "unhealthy"]
Kind = str  # system, http, dependency, queue, or a signal group (celery, one of the app's own)
_RANK: dict[str, int] = {"healthy": 0, "degraded": 1, "unhealthy": 2}
Detail = float | int | str | bool | None


@dataclass
class Check:
    """One health check's outcome."""

    name: str
    kind: Kind
    status: Status = "healthy"
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Detail] = field(default_factory=dict)
    checked_at: float | None = None

    def worsen(self, status: Status, reason: str) -> None:
        """Record `reason`; the status only ever gets worse."""
        self.reasons.append(reason)
        if _RANK[status] > _RANK[self.status]:
            self.status = status

    @property
    def reason(self) -> str:
        """The reasons joined, or "ok"."""
        return "; ".join(self.reasons) or "ok"


def worst(statuses: list[Status]) -> Status:
    """The worst of `statuses` (healthy when empty)."""
    return max(statuses, key=lambda s: _RANK[s], default="healthy")
