# The exporter image: `exporter serve` (the sidecar) and `exporter demo` (the demo shop,
# docker-compose.yml's demo-app).
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
# Dependencies first, from pyproject.toml alone, so that a change to the code or the README
# reuses this layer: an empty package and readme stand in for them while pip installs what
# pyproject.toml requires, and are removed again.
COPY pyproject.toml ./
RUN mkdir exporter && touch exporter/__init__.py README.md \
 && pip install '.[probes]' \
 && pip uninstall -y exporter \
 && rm -rf exporter README.md build exporter.egg-info
COPY README.md ./
COPY exporter ./exporter
# `.[probes]`: the PostgreSQL, MySQL, DuckDB and RabbitMQ drivers, so EXPORTER_DEPENDENCIES and
# EXPORTER_QUEUES may name any supported kind (Redis needs none). They are installed above
# already: this step installs the package itself.
RUN pip install '.[probes]' \
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
