#!/bin/bash
# Measures which container options let bubblewrap sandboxes run in the image: `rlm demo` with
# sandbox.isolation forced to bwrap, once per option set. Prints one line per set: ok or the error.
#
#   deploy/options-matrix.sh [IMAGE]        # ENGINE=podman (default) or docker
#
# DOCKER_LIKE_SECCOMP / BWRAP_SECCOMP: paths of a Docker-style default profile and of the one
# deploy/seccomp.py makes from it, to measure Docker's default profile under podman too.
set -uo pipefail
ENGINE=${ENGINE:-podman}
IMAGE=${1:-rlm-bot}
sets=(
  ""
  "--security-opt seccomp=unconfined"
  "--security-opt unmask=/proc/*"
  "--security-opt unmask=ALL"
  "--security-opt seccomp=unconfined --security-opt unmask=ALL"
  "--cap-add SYS_ADMIN"
  "--security-opt systempaths=unconfined"
  "--privileged"
)
if [ -n "${DOCKER_LIKE_SECCOMP:-}" ]; then
  sets+=("--security-opt seccomp=$DOCKER_LIKE_SECCOMP --security-opt unmask=/proc/*"
         "--security-opt seccomp=$DOCKER_LIKE_SECCOMP --cap-add SYS_ADMIN --security-opt unmask=/proc/*")
fi
if [ -n "${BWRAP_SECCOMP:-}" ]; then
  sets+=("--security-opt seccomp=$BWRAP_SECCOMP --security-opt unmask=/proc/*"
         "--security-opt seccomp=$BWRAP_SECCOMP")
fi
for opts in "${sets[@]}"; do
  start=$(date +%s.%N)
  # shellcheck disable=SC2086
  out=$(timeout 300 "$ENGINE" run --rm --network none -e RLM_SANDBOX__ISOLATION=bwrap $opts "$IMAGE" demo -o /dev/null 2>&1)
  rc=$?
  secs=$(python3 -c "import sys; print(f'{float(sys.argv[2]) - float(sys.argv[1]):.1f}')" "$start" "$(date +%s.%N)")
  if [ $rc = 0 ]; then verdict=ok; else
    verdict="FAIL ($rc): $(printf '%s\n' "$out" | grep -v -E '^\s*$|SCRIPTED DEMO|systemd connection' | grep -m1 -i -E "can't|cannot|not permitted|denied|failed|refuse|error" | cut -c1-160)"
  fi
  printf '%-90s %6ss  %s\n' "${opts:-(no option)}" "$secs" "$verdict"
done
