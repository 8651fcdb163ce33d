"""`POST /api/v1/observability/alerts/webhook`: Alertmanager's webhook receiver (payload v4).

Alertmanager posts here (alertmanager/alertmanager.yml); the notifications are kept in memory
and listed by `GET /api/v1/observability/alerts` under `notifications`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from exporter.api.bounded import TOO_LARGE_REPLY, bounded_route
from exporter.api.validation import protected
from exporter.config import Settings, env_name
from exporter.health.notifications import NotificationStore, NotifiedAlert, ReceivedNotification

PATH = "/api/v1/observability/alerts/webhook"
# Alertmanager's zero time: what a firing alert carries as endsAt.
_NEVER = datetime(1, 1, 1, tzinfo=timezone.utc)
_Text = Annotated[str, Field(max_length=4096)]
_Labels = Annotated[dict[_Text, _Text], Field(max_length=256)]


class _Payload(BaseModel):
    # Unknown fields are ignored: newer Alertmanagers may add some within version 4.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


class WebhookAlert(_Payload):
    """One alert of the payload."""

    status: Literal["firing", "resolved"]
    labels: _Labels
    annotations: _Labels
    starts_at: AwareDatetime = Field(alias="startsAt")
    ends_at: AwareDatetime = Field(alias="endsAt")
    generator_url: _Text = Field("", alias="generatorURL")
    fingerprint: _Text = ""

    @field_validator("starts_at", "ends_at", mode="before")
    @classmethod
    def _rfc3339_text(cls, value: Any) -> Any:
        # Alertmanager sends RFC 3339 text; a bare number would be read as Unix time.
        if not isinstance(value, str):
            raise ValueError("must be an RFC 3339 time with a zone, e.g. 2026-01-02T03:04:05Z")
        return value


class WebhookPayload(_Payload):
    """Alertmanager's webhook body, version 4 (see its `webhook_config` documentation)."""

    version: Literal["4"]
    group_key: _Text = Field(alias="groupKey")
    truncated_alerts: int = Field(0, ge=0, alias="truncatedAlerts", strict=True)

    @field_validator("truncated_alerts", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        # JSON Schema's "integer" is any number without a fraction: 143.0 is one. A string
        # or a bool is not (strict refuses them).
        if isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    status: Literal["firing", "resolved"]
    receiver: _Text
    group_labels: _Labels = Field(alias="groupLabels")
    common_labels: _Labels = Field(alias="commonLabels")
    common_annotations: _Labels = Field(alias="commonAnnotations")
    external_url: _Text = Field(alias="externalURL")
    alerts: list[WebhookAlert] = Field(max_length=1000)

    def received(self, at: datetime) -> ReceivedNotification:
        """What the store keeps."""
        return ReceivedNotification(
            received_at=at, status=self.status, receiver=self.receiver, group_key=self.group_key,
            group_labels=self.group_labels, common_labels=self.common_labels,
            common_annotations=self.common_annotations, external_url=self.external_url,
            truncated_alerts=self.truncated_alerts,
            alerts=[
                NotifiedAlert(
                    status=a.status, labels=a.labels, annotations=a.annotations,
                    starts_at=a.starts_at, ends_at=None if a.ends_at <= _NEVER else a.ends_at,
                    generator_url=a.generator_url, fingerprint=a.fingerprint,
                )
                for a in self.alerts
            ],
        )


class WebhookAccepted(BaseModel):
    """The reply: how many alerts the notification carried."""

    accepted_alerts: int


def alert_webhook_router(settings: Settings, store: NotificationStore) -> APIRouter:
    """The receiver route, guarded by the API token like every /api/v1 route; the token and
    the body's size (EXPORTER_ALERT_WEBHOOK_MAX_BYTES) are checked before the body is read."""
    router = APIRouter(
        tags=["observability"], **protected(settings),
        route_class=bounded_route(settings, settings.alert_webhook_max_bytes,
                                  env_name("alert_webhook_max_bytes")),
    )

    @router.post(
        PATH, response_model=WebhookAccepted, summary="Alertmanager webhook receiver",
        responses={400: {"description": "the body cannot be decoded (not UTF-8 JSON)"},
                   413: TOO_LARGE_REPLY},
    )
    def receive(payload: WebhookPayload) -> WebhookAccepted:
        store.add(payload.received(datetime.now(timezone.utc)))
        return WebhookAccepted(accepted_alerts=len(payload.alerts))

    return router
