# The line's container image: `ivr serve` on waitress as an unprivileged user. The same image
# runs the agents' desk (`ivr desk`), the migrations (`ivr db upgrade`) and the sweep
# (`ivr sweep`); compose.yaml runs the whole production shape with it.
# Base images are pinned to an exact release (pin the digest too where your registry allows).
FROM python:3.11.14-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY ivr ./ivr
RUN python -m venv /opt/ivr \
    && /opt/ivr/bin/pip install --no-cache-dir --disable-pip-version-check ".[postgres]"

FROM python:3.11.14-slim-bookworm
# The data directory (SQLite, the generated secret key) only matters without PostgreSQL and
# IVR_SECRET_KEY; it belongs to the line's user, readable by it alone.
RUN groupadd --system --gid 10001 ivr \
    && useradd --system --uid 10001 --gid ivr --home-dir /var/lib/ivr --create-home --shell /usr/sbin/nologin ivr \
    && chmod 0700 /var/lib/ivr
COPY --from=build /opt/ivr /opt/ivr
COPY call_flows /app/call_flows
COPY prompts /app/prompts
ENV PATH=/opt/ivr/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IVR_DATA_DIR=/var/lib/ivr \
    IVR_FLOWS_DIR=/app/call_flows \
    IVR_PROMPTS_DIR=/app/prompts \
    IVR_LOG_FORMAT=json
WORKDIR /var/lib/ivr
USER ivr:ivr
EXPOSE 8080 9100
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"]
CMD ["ivr", "serve", "--host", "0.0.0.0", "--port", "8080", "--threads", "8"]
