# The exporter image: `exporter serve` (the sidecar) and, with --demo, the demo app.
# Built by docker-compose.yml; see docs/stack.md.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EXPORTER_HOST=0.0.0.0 \
    EXPORTER_LOG_DIR=/var/lib/exporter/logs \
    EXPORTER_DATA_DIR=/var/lib/exporter/data

WORKDIR /src
# Metadata first so that a code-only change reuses the dependency layer.
COPY pyproject.toml README.md ./
COPY exporter ./exporter
RUN pip install . \
 && useradd --system --uid 10480 --home-dir /var/lib/exporter exporter \
 && mkdir -p /var/lib/exporter/logs /var/lib/exporter/data \
 && chown -R exporter:exporter /var/lib/exporter
# A named volume mounted on these directories starts with this ownership, so the
# unprivileged user can write its logs and data there.

USER exporter
WORKDIR /var/lib/exporter
EXPOSE 9480
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('EXPORTER_PORT', '9480') + '/healthz', timeout=4)"
ENTRYPOINT ["exporter"]
CMD ["serve"]
