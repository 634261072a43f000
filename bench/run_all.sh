#!/usr/bin/env bash
# Run every bench that can run here and write docs/performance.md's generated section from the
# measured numbers. Benches print figures; they never gate anything (a failing bench is reported
# and the rest still run). Traffic: loopback and this project's containers only.
#
#   bench/run_all.sh                 full run (fleet N=10,100,1000 + lab, converge + mitogen)
#   FLEET_ARGS="--sizes 10,100 --repeat 1" CONVERGE_ARGS="--repeat 1" bench/run_all.sh   quick
#   BENCH_MITOGEN=0 bench/run_all.sh    skip mitogen (otherwise pip-installed into .venv for the bench)
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 1
# shellcheck disable=SC1091
source .venv/bin/activate
OUT=${BENCH_OUT:-$ROOT/.cache/bench}
mkdir -p "$OUT"
status=()

run() {  # name, command...
  local name=$1
  shift
  echo "=== $name: $*"
  if "$@"; then status+=("$name: ok"); else status+=("$name: FAILED (rc $?)"); fi
}

# The lab is shared: start it if it is missing (lab.sh up is idempotent), never stop it here.
if ! podman ps --format '{{.Names}}' | grep -qx mx1; then
  run lab-up tests/lab/lab.sh up
fi

read -ra fleet_args <<<"${FLEET_ARGS:---repeat 3 --module-repeat 2}"
run fleet python bench/fleet_bench.py --with-lab --json "$OUT/fleet.json" "${fleet_args[@]}"

converge_args=()
if [[ ${BENCH_MITOGEN:-1} == 1 ]]; then
  python -c 'import ansible_mitogen' 2>/dev/null || pip install -q --disable-pip-version-check mitogen
  converge_args+=(--mitogen)
fi
read -ra extra <<<"${CONVERGE_ARGS:-}"
run converge python bench/converge_bench.py --json "$OUT/converge.json" "${converge_args[@]}" "${extra[@]}"

if [[ -f bench/probe_bench.py ]]; then
  run probe python bench/probe_bench.py
fi

args=()
[[ -f $OUT/fleet.json ]] && args+=(--fleet "$OUT/fleet.json")
[[ -f $OUT/converge.json ]] && args+=(--converge "$OUT/converge.json")
run render python bench/render_doc.py "${args[@]}"
printf '%s\n' "${status[@]}"
