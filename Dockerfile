# rlm-bot as a GitHub App: Debian's Python, the pinned versions in constraints.txt, an unprivileged
# user, tini as PID 1 (it forwards SIGTERM to rlm and reaps orphans). One image, both roles:
#
#   docker build -t rlm-bot .
#   docker run -p 8080:8080 --env-file app.env -v rlm-data:/data $SANDBOX_OPTIONS rlm-bot        # rlm serve
#   docker run ... rlm-bot serve --host 0.0.0.0 --port 8080 --workers 0         # intake only (no sandboxes)
#   docker run ... $SANDBOX_OPTIONS rlm-bot worker --metrics-host 0.0.0.0 --metrics-port 8080   # jobs only
#
# Sandboxes (bubblewrap) need an unmasked /proc and the namespace system calls; without them the
# server refuses to start. Least privilege measured (docs/github-app.md, "Sandboxes in a container"):
#   Podman: --security-opt unmask=/proc/* --security-opt no-new-privileges --cap-drop ALL
#   Docker: --security-opt seccomp=rlm-seccomp.json (deploy/seccomp.py) --security-opt systempaths=unconfined
#           --security-opt no-new-privileges --cap-drop ALL
# Kubernetes' securityContext: deploy/kubernetes.yaml.
#
# Builds anywhere Debian's mirror is reachable (no Docker Hub image but debian:bookworm-slim).
# A private index or a TLS-intercepting proxy, without baking anything into the image:
#   --build-arg PIP_INDEX_URL=https://pypi.internal/simple   (no credentials here: build args are
#                                                             visible in the image's history)
#   --secret id=pip.conf,src=$HOME/.config/pip/pip.conf      (index with credentials, proxy, ...)
#   --secret id=ca,src=/path/to/corporate-ca.pem             (extra CA for pip, build only)
# HTTP(S)_PROXY/NO_PROXY build args are passed through by Docker and Podman and are not recorded.

FROM debian:bookworm-slim AS base
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 git bubblewrap slirp4netns iproute2 tini ca-certificates \
 && rm -rf /var/lib/apt/lists/*

FROM base AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3-venv \
 && rm -rf /var/lib/apt/lists/*
ARG PIP_INDEX_URL
ARG PIP_EXTRA_INDEX_URL
# The extras the App uses; the lock pins every package they pull (deploy/lock.sh regenerates it).
ARG RLM_EXTRAS=app,postgres,daytona
COPY pyproject.toml README.md constraints.txt /src/
COPY bot /src/bot
COPY webhooks /src/webhooks
COPY action /src/action
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf \
    --mount=type=secret,id=ca,target=/run/secrets/ca \
    set -eu; \
    cert=/etc/ssl/certs/ca-certificates.crt; \
    if [ -s /run/secrets/ca ]; then cat "$cert" /run/secrets/ca > /tmp/build-ca.pem; cert=/tmp/build-ca.pem; fi; \
    python3 -m venv /opt/rlm; \
    PIP_CERT="$cert" PIP_DISABLE_PIP_VERSION_CHECK=1 /opt/rlm/bin/pip install --no-cache-dir --quiet \
      --constraint /src/constraints.txt "/src${RLM_EXTRAS:+[$RLM_EXTRAS]}"; \
    rm -f /tmp/build-ca.pem; \
    /opt/rlm/bin/rlm --help >/dev/null

FROM base
COPY --from=build /opt/rlm /opt/rlm
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin rlm \
 && mkdir -p /data \
 && chown rlm:rlm /data
USER rlm
WORKDIR /data
ENV PATH=/opt/rlm/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONUNBUFFERED=1 \
    RLM_DB=/data/rlm-jobs.sqlite3 \
    RLM_SANDBOX__CACHE_DIR=/data/cache \
    XDG_CACHE_HOME=/data/cache \
    HOME=/home/rlm
VOLUME ["/data"]
EXPOSE 8080
# Both roles answer /healthz on 8080 (a worker with --metrics-port 8080).
HEALTHCHECK --interval=30s --timeout=3s CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# tini is PID 1: SIGTERM reaches rlm (which then stops gracefully), zombies are reaped.
ENTRYPOINT ["/usr/bin/tini", "--", "rlm"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8080", "--workers", "2"]
