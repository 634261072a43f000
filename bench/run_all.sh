#!/usr/bin/env bash
# Run every bench that can run here and write docs/performance.md's generated section from the
# measured numbers. Benches print figures; they never gate anything (a failing bench is reported
# and the rest still run). Traffic: loopback and this project's containers only.
#
#   bench/run_all.sh                 full run (fleet N=10,100,1000 with the lab MTAs in every run, converge + mitogen)
#   FLEET_ARGS="--sizes 10,100 --repeat 1" CONVERGE_ARGS="--repeat 1" PROBE_ARGS="--runs 1" bench/run_all.sh   quick
#   PROBE_LAB_HOSTS="mx1"   lab hosts for probe_bench (default: mx1 exim1; empty: fake host only)
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

# With the lab up, the real MTAs are verified in the same runs as the emulated fleet (--mixed-lab:
# the bench runs in the prober's network namespace, which needs root for nsenter); otherwise the
# emulated fleet alone on this machine's loopback.
read -ra fleet_args <<<"${FLEET_ARGS:---repeat 3 --module-repeat 2}"
fleet_mode=()
if [[ $(id -u) == 0 ]] && podman ps --format '{{.Names}}' | grep -qx prober; then
  fleet_mode=(--mixed-lab)
else
  status+=("fleet: emulated endpoints only (lab prober not running, or not root for nsenter)")
fi
run fleet python bench/fleet_bench.py "${fleet_mode[@]}" --json "$OUT/fleet.json" "${fleet_args[@]}"

converge_args=()
if [[ ${BENCH_MITOGEN:-1} == 1 ]]; then
  python -c 'import ansible_mitogen' 2>/dev/null || pip install -q --disable-pip-version-check mitogen
  converge_args+=(--mitogen)
fi
read -ra extra <<<"${CONVERGE_ARGS:-}"
run converge python bench/converge_bench.py --json "$OUT/converge.json" "${converge_args[@]}" "${extra[@]}"

# Probe matrix vs nmap: the fake host on loopback, then each lab host from the prober's network
# namespace (this machine has no address on the lab network), 30 s between rounds so that
# Dovecot's auth penalty from the previous round's wrong passwords (T08) has expired.
probe_jsons=()
read -ra probe_args <<<"${PROBE_ARGS:---runs 5}"
rm -f "$OUT"/probe-*.json
run probe-fake python bench/probe_bench.py --json "$OUT/probe-fake.json" "${probe_args[@]}"
probe_jsons+=("$OUT/probe-fake.json")
read -ra lab_hosts <<<"${PROBE_LAB_HOSTS-mx1 exim1}"
for host in "${lab_hosts[@]}"; do
  if podman ps --format '{{.Names}}' | grep -qx prober && podman ps --format '{{.Names}}' | grep -qx "$host"; then
    run "probe-$host" python bench/probe_bench.py --lab-host "$host" --netns prober --pause 30 \
      --json "$OUT/probe-$host.json" "${probe_args[@]}"
    probe_jsons+=("$OUT/probe-$host.json")
  else
    status+=("probe-$host: skipped (lab container $host or prober not running)")
  fi
done

args=()
[[ -f $OUT/fleet.json ]] && args+=(--fleet "$OUT/fleet.json")
[[ -f $OUT/converge.json ]] && args+=(--converge "$OUT/converge.json")
for json in "${probe_jsons[@]}"; do
  [[ -f $json ]] && args+=(--probe "$json")
done
run render python bench/render_doc.py "${args[@]}"
printf '%s\n' "${status[@]}"
