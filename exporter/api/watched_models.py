"""What the figures are of: the sidecar's own app, scraped targets, or Prometheus."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, Field

from exporter.health.monitor import HealthMonitor


class TargetOut(BaseModel):
    """One watched app and its last scrape."""

    instance: str = Field(description="host:port: how its values are labelled (?instance=)")
    url: str
    labels: dict[str, str] = Field(description="what the file_sd entry says about it")
    up: bool | None = Field(description="null before its first scrape")
    reason: str = Field(description="'ok', or why the last scrape failed")
    scraped_at: datetime | None
    scrape_seconds: float | None
    series: int | None = Field(description="sample lines it served")


class TargetsReport(BaseModel):
    """What is watched, and each target's state."""

    watching: Literal["self", "targets", "prometheus"] = Field(
        description="self: the app that serves this API; targets: the apps listed in "
        "EXPORTER_TARGETS / EXPORTER_TARGETS_FILE; prometheus: the service as Prometheus has "
        "it (EXPORTER_PROMETHEUS_URL, EXPORTER_SERVICE_SELECTOR), its instances as seen there")
    targets: list[TargetOut]
    file_error: str | None = Field(
        None, description="why EXPORTER_TARGETS_FILE could not be read (its last targets stay)")

    @classmethod
    def of(cls, monitor: HealthMonitor) -> TargetsReport:
        """The monitor's targets and their last scrapes."""
        source = monitor.targets
        if monitor.engines:
            point = monitor.history.latest()
            seen = sorted(point.instances) if point is not None else []
            return cls(watching="prometheus", file_error=None, targets=[TargetOut(
                instance=name, url="", labels={}, up=None, reason="as Prometheus has it",
                scraped_at=None, scrape_seconds=None, series=None) for name in seen if name])
        if source is None:
            return cls(watching="self", targets=[], file_error=None)
        last = {s.target.instance: s for s in source.last()}
        out = []
        for target in source.targets():
            scrape = last.get(target.instance)
            out.append(TargetOut(
                instance=target.instance, url=target.url, labels=target.labels,
                up=None if scrape is None else scrape.up,
                reason="not scraped yet" if scrape is None else scrape.reason,
                scraped_at=None if scrape is None else datetime.fromtimestamp(
                    scrape.checked_at, timezone.utc),
                scrape_seconds=None if scrape is None else round(scrape.seconds, 4),
                series=None if scrape is None else scrape.series,
            ))
        error = source.file.error if source.file is not None else None
        return cls(watching="targets", targets=out, file_error=error)
