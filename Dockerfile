# The tilannekuva services (topics, worker, api) for docker-compose.yml.
#   docker build -t tilannekuva:0.1.0 .
FROM python:3.11.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (a layer that survives code edits), then the code.
COPY pyproject.toml README.md ./
COPY tilannekuva ./tilannekuva
COPY models ./models
COPY streams ./streams
COPY sinks ./sinks
RUN pip install . \
    && useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin tk \
    && mkdir -p /app/state \
    && chown -R tk /app

USER tk
# The worker keeps its RocksDB tables under the working directory (TK_DATA_DIR is
# relative to it); docker-compose.yml mounts a volume here, owned by tk as created.
WORKDIR /app/state
EXPOSE 8080 6066

CMD ["tilannekuva", "--help"]
