#!/bin/bash
# Builds the image and runs it for real: `rlm demo` with bubblewrap forced under the documented
# options (and refused without them), `rlm serve` with /healthz and /readyz, a timed SIGTERM stop,
# and the compose stack (podman-compose) on a PostgreSQL image you can name. Binds to 127.0.0.1
# only; every step is bounded; everything it starts is removed at the end.
#
#   deploy/check.sh                      # ENGINE=podman; RLM_POSTGRES_IMAGE=... to use another image
#
# Where Docker Hub is unreachable, ../shared/tools/container-base.sh (or any debian:bookworm-slim)
# provides the base, and the PostgreSQL stand-in is built from deploy/postgres.Dockerfile.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
COMPOSE=${COMPOSE:-podman-compose}
IMAGE=${RLM_IMAGE:-localhost/rlm-bot:check}
PG_IMAGE=${RLM_POSTGRES_IMAGE:-localhost/rlm-postgres:check}
# The measured least privilege for bubblewrap under Podman (docs/github-app.md).
SANDBOX_OPTS=(--security-opt 'unmask=/proc/*' --security-opt no-new-privileges --cap-drop ALL)
tag=rlmcheck$$
tmp=$(mktemp -d /tmp/rlm-check.XXXXXX)
t0=$(date +%s.%N)
failed=0

elapsed() { python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$1" "$(date +%s.%N)"; }
step() { printf '\n== %s\n' "$*"; s0=$(date +%s.%N); }
done_step() { printf '   %s (%ss)\n' "$*" "$(elapsed "$s0")"; }
fail() { printf '   FAIL: %s\n' "$*"; failed=1; }
free_port() { python3 -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"; }
quiet() { grep -v -e 'systemd connection to add healthchecks' || true; }
http() { curl -s -o "$tmp/body" -w '%{http_code}' --max-time 5 "$1" || true; }

cleanup() {
  "$ENGINE" rm -f -v -t 0 --ignore "$tag-serve" "$tag-refused" >/dev/null 2>&1 || true
  if [ -f "$tmp/compose.env" ]; then
    (set -a; . "$tmp/compose.env"; timeout 120 "$COMPOSE" -p "$tag" down -v -t 5 >/dev/null 2>&1) || true
  fi
  # Whatever compose left behind (a timeout, an interrupted run): this project's containers,
  # network and volumes only.
  "$ENGINE" ps -aq --filter "label=com.docker.compose.project=$tag" | xargs -r "$ENGINE" rm -f -v -t 0 >/dev/null 2>&1 || true
  "$ENGINE" network rm -f "${tag}_default" >/dev/null 2>&1 || true
  "$ENGINE" volume rm -f "${tag}_rlm-db" "${tag}_rlm-results" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# A syntactically valid App: a fresh RSA key, a made-up id, a webhook secret. GitHub is never
# reached (GITHUB_API_URL points at a closed loopback port), so readiness names what is missing.
openssl genrsa -out "$tmp/app.pem" 2048 2>/dev/null
{
  echo "GITHUB_APP_ID=123456"
  echo "GITHUB_PRIVATE_KEY=$(awk 'BEGIN{ORS="\\n"} {print}' "$tmp/app.pem")"
  echo "GITHUB_WEBHOOK_SECRET=check-$(openssl rand -hex 16)"
  echo "GITHUB_API_URL=http://127.0.0.1:9/api/v3"
} > "$tmp/app.env"

step "build $IMAGE"
timeout 1500 "$ENGINE" build --format docker -q -t "$IMAGE" . >/dev/null
done_step "built; $("$ENGINE" image inspect --format '{{.Size}}' "$IMAGE" | awk '{printf "%.0f MB", $1/1e6}')"

step "rlm demo, RLM_SANDBOX__ISOLATION=bwrap, options: ${SANDBOX_OPTS[*]}"
if timeout 600 "$ENGINE" run --rm --network none -e RLM_SANDBOX__ISOLATION=bwrap "${SANDBOX_OPTS[@]}" "$IMAGE" demo -o "/tmp/demo.patch" >"$tmp/demo.out" 2>&1; then
  done_step "ok: $(grep -m1 -E '^patch:' "$tmp/demo.out" || echo 'finished')"
else
  quiet < "$tmp/demo.out" | tail -5
  fail "rlm demo under the documented options"
fi

step "rlm demo, RLM_SANDBOX__ISOLATION=bwrap, no option (must fail)"
if timeout 600 "$ENGINE" run --rm --network none -e RLM_SANDBOX__ISOLATION=bwrap "$IMAGE" demo -o /tmp/demo.patch >"$tmp/demo0.out" 2>&1; then
  fail "rlm demo ran sandboxes without the options: the check is wrong"
else
  done_step "refused: $(quiet < "$tmp/demo0.out" | grep -m1 -E "The run failed|cannot run|refuse" | cut -c1-240)"
fi

step "rlm serve without the options (must refuse to start)"
"$ENGINE" run -d --name "$tag-refused" --network none --env-file "$tmp/app.env" -e LLM_API_KEY=check \
  "$IMAGE" serve --host 0.0.0.0 --port 8080 --workers 1 2>&1 | quiet >/dev/null
for _ in $(seq 1 90); do
  [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$tag-refused" 2>/dev/null)" = true ] || break
  sleep 1
done
if [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$tag-refused" 2>/dev/null)" = true ]; then
  fail "rlm serve started without the sandbox options: $("$ENGINE" logs "$tag-refused" 2>&1 | quiet | tail -1 | cut -c1-200)"
else
  done_step "refused (exit $("$ENGINE" inspect -f '{{.State.ExitCode}}' "$tag-refused")): $("$ENGINE" logs "$tag-refused" 2>&1 | quiet | tail -1 | cut -c1-240)"
fi
"$ENGINE" rm -f -v -t 0 "$tag-refused" >/dev/null 2>&1 || true

step "rlm serve with the options: /healthz, /readyz"
port=$(free_port)
"$ENGINE" run -d --name "$tag-serve" -p "127.0.0.1:$port:8080" --env-file "$tmp/app.env" -e LLM_API_KEY=check \
  "${SANDBOX_OPTS[@]}" "$IMAGE" serve --host 0.0.0.0 --port 8080 --workers 1 2>&1 | quiet >/dev/null
code=000
for _ in $(seq 1 120); do
  code=$(http "http://127.0.0.1:$port/healthz")
  [ "$code" = 200 ] && break
  [ "$("$ENGINE" inspect -f '{{.State.Running}}' "$tag-serve" 2>/dev/null)" = true ] || break
  sleep 0.5
done
if [ "$code" = 200 ]; then
  done_step "/healthz 200: $(head -c 200 "$tmp/body")"
  ready=$(http "http://127.0.0.1:$port/readyz")
  printf '   /readyz %s: %s\n' "$ready" "$(head -c 400 "$tmp/body")"
else
  "$ENGINE" logs "$tag-serve" 2>&1 | tail -5
  fail "rlm serve did not answer /healthz (last: $code)"
fi

step "SIGTERM to rlm serve (through tini)"
s_stop=$(date +%s.%N)
"$ENGINE" kill --signal TERM "$tag-serve" >/dev/null 2>&1 || true
timeout 60 "$ENGINE" wait "$tag-serve" >"$tmp/exit" 2>/dev/null || true
stop_secs=$(elapsed "$s_stop")
done_step "exited with status $(cat "$tmp/exit" 2>/dev/null || echo '?') ${stop_secs}s after SIGTERM"
"$ENGINE" logs "$tag-serve" 2>&1 | quiet | tail -3 | cut -c1-200 | sed 's/^/   log: /'
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) < 10 else 1)" "$stop_secs" || fail "stopping took ${stop_secs}s"

step "compose stack with $COMPOSE (PostgreSQL image: $PG_IMAGE)"
if [ -z "${RLM_POSTGRES_IMAGE:-}" ]; then
  timeout 900 "$ENGINE" build -q -t "$PG_IMAGE" -f deploy/postgres.Dockerfile deploy >/dev/null
fi
pa=$(free_port); pb=$(free_port)
cat > "$tmp/compose.env" <<EOF
RLM_IMAGE=$IMAGE
RLM_POSTGRES_IMAGE=$PG_IMAGE
RLM_ENV_FILE=$tmp/app.env
RLM_PORT_A=$pa
RLM_PORT_B=$pb
RLM_BIND_IP=127.0.0.1
RLM_SECCOMP_OPT=seccomp=/usr/share/containers/seccomp.json
RLM_PROC_OPT=unmask=/proc/*
POSTGRES_PASSWORD=check-$(openssl rand -hex 8)
EOF
(set -a; . "$tmp/compose.env"; timeout 600 "$COMPOSE" -p "$tag" up -d --no-build >"$tmp/compose-up.out" 2>&1) || {
  tail -20 "$tmp/compose-up.out"; fail "compose up"; }
code=000
for _ in $(seq 1 240); do
  code=$(http "http://127.0.0.1:$pa/readyz")
  [ "$code" = 200 ] && break
  sleep 0.5
done
done_step "intake-a /readyz $code: $(head -c 300 "$tmp/body")"
code_b=$(http "http://127.0.0.1:$pb/healthz")
printf '   intake-b /healthz %s\n' "$code_b"
in_container() {  # GET $2 inside container $1: "<status> <body>"
  timeout 30 "$ENGINE" exec "$1" python3 -c "
import sys, urllib.error, urllib.request as u
try:
    r = u.urlopen(sys.argv[1], timeout=3); print(r.status, r.read()[:300].decode().strip())
except urllib.error.HTTPError as e:
    print(e.code, e.read()[:300].decode().strip())
except OSError as e:
    print('000', e)" "http://127.0.0.1:8080$2" 2>&1 | quiet | tail -1 || true
}
for w in worker-1 worker-2; do
  c=$("$ENGINE" ps -a --filter "label=com.docker.compose.project=$tag" --filter "label=com.docker.compose.service=$w" --format '{{.Names}}' | head -1 || true)
  [ -n "$c" ] || { fail "no container for $w"; continue; }
  h=000
  for _ in $(seq 1 60); do
    h=$(in_container "$c" /healthz)
    [ "${h%% *}" = 200 ] && break
    sleep 1
  done
  printf '   %s: /healthz %s; /readyz %s\n' "$w" "$h" "$(in_container "$c" /readyz)"
  [ "${h%% *}" = 200 ] || { "$ENGINE" logs "$c" 2>&1 | quiet | tail -3; fail "$w is not healthy"; }
done
s_down=$(date +%s.%N)
(set -a; . "$tmp/compose.env"; timeout 180 "$COMPOSE" -p "$tag" down -v -t 15 >/dev/null 2>&1) || fail "compose down"
rm -f "$tmp/compose.env"
printf '   compose down (SIGTERM to every service): %ss\n' "$(elapsed "$s_down")"

printf '\n== %s in %ss\n' "$([ $failed = 0 ] && echo 'all checks passed' || echo 'SOME CHECKS FAILED')" "$(elapsed "$t0")"
exit $failed
