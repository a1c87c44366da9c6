#!/bin/bash
# Regenerates constraints.txt: the exact versions of everything `rlm-bot[app,postgres,daytona]`
# pulls, resolved fresh by pip on the image's own base (debian:bookworm-slim, Debian's Python).
# The Dockerfile and the Action install with `--constraint constraints.txt`, so every build gets
# these versions. Run it to take upgrades (then run the tests and deploy/check.sh), and commit the
# result:
#
#   deploy/lock.sh                 # ENGINE=docker deploy/lock.sh with Docker
#
# PIP_INDEX_URL / PIP_EXTRA_INDEX_URL and HTTPS_PROXY are passed to pip when set.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
EXTRAS=${RLM_EXTRAS:-app,postgres,daytona}
pass=()
for v in PIP_INDEX_URL PIP_EXTRA_INDEX_URL HTTPS_PROXY HTTP_PROXY NO_PROXY https_proxy http_proxy no_proxy; do
  [ -n "${!v:-}" ] && pass+=(-e "$v")
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
"$ENGINE" run --rm --network host "${pass[@]}" -v "$PWD:/src:ro" docker.io/library/debian:bookworm-slim sh -euc "
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv >/dev/null
  mkdir /tmp/src && cd /src && cp -r pyproject.toml README.md bot webhooks action /tmp/src/
  python3 -m venv /tmp/venv
  export PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1
  /tmp/venv/bin/pip install --no-cache-dir --quiet '/tmp/src[$EXTRAS]'
  echo python \$(/tmp/venv/bin/python -c 'import platform; print(platform.python_version())') >&2
  /tmp/venv/bin/pip freeze --exclude rlm-bot --all | grep -v -E '^(pip|setuptools|wheel)=='
" > "$out"
{
  echo "# Exact versions for rlm-bot[$EXTRAS], resolved by deploy/lock.sh on debian:bookworm-slim"
  echo "# (Debian's Python 3.11). Used as a pip constraints file by the Dockerfile and action.yml:"
  echo "#   pip install --constraint constraints.txt 'rlm-bot[app,postgres]'"
  echo "# Regenerate with deploy/lock.sh; do not edit by hand."
  LC_ALL=C sort -f -t= -k1,1 "$out"
} > constraints.txt
echo "constraints.txt: $(grep -c '==' constraints.txt) packages pinned"
