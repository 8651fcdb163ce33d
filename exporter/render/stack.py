"""The stack's own alerts (scrapes, dependencies, queues, log shipping), which no threshold
sets, and the promtool series that make each one fire or stay silent."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from exporter.render.rule import AlertRule

STEP = 15.0  # series interval and evaluation interval of the promtool tests, seconds
# Lines given up on the way to Loki, each with a `reason` label: by the exporter's own shipper
# (EXPORTER_LOKI_URL), by Alloy's loki.write and by Promtail's client (the compose stack's
# shipper, scraped as job log-shipper).
SHIPPER_DROPS = (
    "loki_shipper_lines_dropped_total",
    "loki_write_dropped_entries_total",
    "promtail_dropped_entries_total",
)
# Alerts whose expression needs two samples (deriv, increase) before it can hold.
NEEDS_TWO_SAMPLES = ("QueueBacklogGrowing", "LogShipperDroppingLines")


def stack_rules(window: str) -> list[AlertRule]:
    """Alerts on the stack itself: scrapes, dependencies, queues and log shipping."""
    return [
        AlertRule(
            "TargetDown", "up == 0", 60, "critical", "A scrape target is down",
            "Prometheus could not scrape {{ $labels.instance }} (job {{ $labels.job }}, "
            "service {{ $labels.service }}) for 1m: up is {{ $value | humanize }}; the "
            "threshold is up == 0.", "alerts"),
        AlertRule(
            "DependencyDown", "dependency_up == 0", 60, "critical", "A dependency is down",
            "The {{ $labels.kind }} dependency {{ $labels.name }} of {{ $labels.service }} "
            "failed every probe for 1m: dependency_up is {{ $value | humanize }}; the threshold "
            "is dependency_up == 0.", "dependencies"),
        AlertRule(
            "QueueBacklogGrowing", "deriv(queue_depth[10m]) > 0 and queue_depth > 0", 900,
            "warning", "A queue keeps growing",
            "Queue {{ $labels.queue }} ({{ $labels.backend }}) of {{ $labels.service }} grew "
            "by {{ $value | humanize }} messages/s over 10m; the threshold is any growth "
            "for 15m.", "dependencies"),
        AlertRule(
            "LogShipperDroppingLines",
            " or ".join(f"increase({counter}[{window}]) > 0" for counter in SHIPPER_DROPS),
            0, "warning", "Log lines are being dropped on the way to Loki",
            f"{{{{ $labels.service }}}} dropped {{{{ $value | humanize }}}} log lines on the way "
            f"to Loki over {window} (reason {{{{ $labels.reason }}}}); the threshold is any drop.",
            "logs"),
    ]


@dataclass
class Side:
    """Input series for one side (firing or silent) and the labels/value the alert would have."""

    series: list[tuple[str, str]] = field(default_factory=list)  # (selector, values)
    alert_labels: dict[str, str] = field(default_factory=dict)
    value: float = 0.0
    # The value at an evaluation time, when it is not constant (increase() over a filling window).
    value_at: Callable[[float], float] | None = None

    def at(self, seconds: float) -> float:
        """The alert's value at `seconds` into the test."""
        return self.value if self.value_at is None else self.value_at(seconds)


def selector(metric: str, labels: dict[str, str]) -> str:
    """`metric{k="v",...}` as promtool's input series take it."""
    inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return f"{metric}{{{inner}}}"


def target(who: str, job: str = "exporter", port: int = 9480) -> dict[str, str]:
    """The labels Prometheus gives a scrape target named `who`."""
    return {"job": job, "instance": f"{who}:{port}", "service": who}


# Labels of each drop counter of LogShipperDroppingLines as scraped: the exporter's own shipper,
# and the stack's Alloy (loki.write) or Promtail (client), job log-shipper.
_SHIPPER_SERIES: dict[str, tuple[str, int, dict[str, str]]] = {
    "loki_shipper_lines_dropped_total": ("exporter", 9480, {"reason": "queue_full"}),
    "loki_write_dropped_entries_total": (
        "log-shipper", 12345,
        {"component_id": "loki.write.loki", "host": "loki:3100", "reason": "ingester_error"}),
    "promtail_dropped_entries_total": (
        "log-shipper", 12345, {"host": "loki:3100", "reason": "rate_limited"}),
}


def stack_sides(rule: AlertRule, steps: int) -> list[tuple[str, Side, Side]]:
    """(what, firing, silent) series for the stack's own alerts: one pair per alert, and one
    per drop counter for the log-shipper alert (one line dropped per step, none before t=0)."""
    if rule.name == "LogShipperDroppingLines":
        pairs = []
        for metric in SHIPPER_DROPS:
            job, port, extra = _SHIPPER_SERIES[metric]
            over, under = ({**target(who, job, port), **extra} for who in ("over", "under"))
            pairs.append((metric,
                          Side([(selector(metric, over), f"0+1x{steps}")], over, 1.0,
                               lambda t: t / STEP),
                          Side([(selector(metric, under), f"0+0x{steps}")], under, 0.0)))
        return pairs
    specs: dict[str, tuple[str, dict[str, str], str, str, float]] = {
        "TargetDown": ("up", {}, f"0x{steps}", f"1x{steps}", 0.0),
        "DependencyDown": (
            "dependency_up", {"kind": "redis", "name": "cache"}, f"0x{steps}", f"1x{steps}", 0.0),
        "QueueBacklogGrowing": (
            "queue_depth", {"backend": "redis", "queue": "jobs"},
            f"10+5x{steps}", f"10+0x{steps}", 5.0 / STEP),
    }
    metric, extra, firing, silent, value = specs[rule.name]
    cases = []
    for who, values in (("over", firing), ("under", silent)):
        labels = {**target(who), **extra}
        cases.append(Side([(selector(metric, labels), values)], labels, value))
    return [("", cases[0], cases[1])]
