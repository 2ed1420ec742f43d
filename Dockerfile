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
    && chown -R tk /app

USER tk
# Faust keeps its local state under the working directory.
WORKDIR /app/state
EXPOSE 8080 6066

CMD ["tilannekuva", "--help"]
