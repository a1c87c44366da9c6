# rlm-bot as a GitHub App, as a non-root user, with git and bubblewrap. One image, both roles:
#
#   docker build -t rlm-bot .
#   docker run -p 8080:8080 --env-file app.env -v rlm-data:/data rlm-bot        # rlm serve (intake + workers)
#   docker run ... rlm-bot serve --host 0.0.0.0 --port 8080 --workers 0         # intake only
#   docker run ... rlm-bot worker --metrics-host 0.0.0.0 --metrics-port 8080    # jobs only
#
# docker-compose.yml runs PostgreSQL, two intake replicas and two workers.
# Sandboxes need bubblewrap, which needs user namespaces: on Docker's default profile run with
# --security-opt seccomp=unconfined. Without them the server refuses to start rather than run
# model-written code unisolated next to its secrets (sandbox.isolation: none overrides that).
# See docs/github-app.md.
FROM python:3.11-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends git bubblewrap slirp4netns iproute2 ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY webhooks ./webhooks
RUN pip install --no-cache-dir . \
 && useradd --create-home --uid 10001 --shell /usr/sbin/nologin rlm \
 && mkdir -p /data \
 && chown rlm:rlm /data

USER rlm
WORKDIR /data
ENV PYTHONUNBUFFERED=1 \
    RLM_DB=/data/rlm-jobs.sqlite3 \
    RLM_SANDBOX__CACHE_DIR=/data/cache \
    XDG_CACHE_HOME=/data/cache \
    HOME=/home/rlm
VOLUME ["/data"]
EXPOSE 8080
# Both roles answer /healthz on 8080 (a worker with --metrics-port 8080).
HEALTHCHECK --interval=30s --timeout=3s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"
ENTRYPOINT ["rlm"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
