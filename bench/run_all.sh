#!/usr/bin/env bash
# Run every bench that can run here and write docs/performance.md's generated section from the
# measured numbers. Benches print figures; they never gate anything (a failing bench is reported
# and the rest still run). Traffic: loopback and this project's containers only.
#
#   bench/run_all.sh                 full run (fleet N=10,100,1000 with the lab MTAs in every run, converge + mitogen)
#   FLEET_ARGS="--sizes 10,100 --repeat 1" CONVERGE_ARGS="--repeat 1" PROBE_ARGS="--runs 1" bench/run_all.sh   quick
#   PROBE_LAB_HOSTS="mx1"   lab hosts for probe_bench (default: mx1 exim1; empty: fake host only)
#   BENCH_MITOGEN=0 bench/run_all.sh    skip mitogen (otherwise pip-installed into .venv for the bench)
#   ZOO_ARGS="--no-nmap"    arguments for bench/zoo_bench.py (the zoo through playbooks/verify.yml)
#
# The demo lab is shared: the whole run holds its lock (/run/lock/mailsec-lab.lock, as lab.sh does)
# so that nobody's demo or verify run lands in the middle of a measurement. Already holding it:
# MAILSEC_LAB_LOCKED=1. The lab figures (fleet with the real MTAs, probe matrix on mx1/exim1) are of
# HARDENED hosts: playbooks/harden.yml runs on the lab first (a no-op when it is already hardened)
# and its outcome is written beside the figures.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAB_LOCK=/run/lock/mailsec-lab.lock
if [[ -z ${MAILSEC_LAB_LOCKED:-} ]]; then
  export MAILSEC_LAB_LOCKED=1
  echo "bench: waiting for the lab lock $LAB_LOCK"
  exec flock -w 3600 -E 75 "$LAB_LOCK" "${BASH_SOURCE[0]}" "$@"
fi
cd "$ROOT" || exit 1
# shellcheck disable=SC1091
source .venv/bin/activate
OUT=${BENCH_OUT:-$ROOT/.cache/bench}
mkdir -p "$OUT"
# Every figure of the document comes from this run: no JSON of an earlier run is rendered.
rm -f "$OUT"/fleet.json "$OUT"/converge.json "$OUT"/zoo.json "$OUT"/probe-*.json
status=()

run() {  # name, command...
  local name=$1
  shift
  echo "=== $name: $*"
  if "$@"; then status+=("$name: ok"); else status+=("$name: FAILED (rc $?)"); fi
}

# A container that is running, asked by name. (Not `podman ps | grep -q NAME`: grep -q exits at
# the first match, podman then dies of SIGPIPE and pipefail turns the match into exit 141.)
running() {
  [[ $(podman container inspect --format '{{.State.Running}}' "$1" 2>/dev/null) == true ]]
}

lab_running() {
  local name
  for name in mx1 hub1 legacy1 exim1 prober; do running "$name" || return 1; done
}

# Start the lab if any of it is missing (lab.sh up is idempotent; it sees our lock), never stop it here.
if ! lab_running; then
  run lab-up tests/lab/lab.sh up
fi

# Harden the lab hosts from their inventory policy: the lab figures are of hardened MTAs (stock
# ones answer the matrix with FAILs and slow INCONCLUSIVEs). The outcome goes into lab.json.
lab_state=not-hardened
rm -f "$OUT/lab.json"
if lab_running; then
  echo "=== lab-harden: ansible-playbook -i tests/lab/inventory playbooks/harden.yml (the lab figures are of hardened hosts)"
  harden_log=$OUT/lab-harden.log
  harden_start=$EPOCHREALTIME
  ansible-playbook -i tests/lab/inventory playbooks/harden.yml >"$harden_log" 2>&1
  harden_rc=$?
  python bench/lab_state.py --log "$harden_log" --rc "$harden_rc" --start "$harden_start" --json "$OUT/lab.json"
  if ((harden_rc == 0)); then
    lab_state=hardened
    status+=("lab-harden: ok (the lab hosts are hardened)")
  else
    tail -30 "$harden_log"
    status+=("lab-harden: FAILED (rc $harden_rc, log $harden_log): lab figures skipped, they would be of unhardened hosts")
  fi
else
  status+=("lab-harden: skipped (lab not running): lab figures skipped")
fi

# With the lab up and hardened, the real MTAs are verified in the same runs as the emulated fleet
# (--mixed-lab: the bench runs in the prober's network namespace, which needs root for nsenter);
# otherwise the emulated fleet alone on this machine's loopback.
read -ra fleet_args <<<"${FLEET_ARGS:---repeat 3 --module-repeat 2}"
fleet_mode=()
if [[ $(id -u) == 0 && $lab_state == hardened ]] && running prober; then
  fleet_mode=(--mixed-lab)
else
  status+=("fleet: emulated endpoints only (lab not hardened, prober not running, or not root for nsenter)")
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
run probe-fake python bench/probe_bench.py --json "$OUT/probe-fake.json" "${probe_args[@]}"
probe_jsons+=("$OUT/probe-fake.json")
read -ra lab_hosts <<<"${PROBE_LAB_HOSTS-mx1 exim1}"
for host in "${lab_hosts[@]}"; do
  if [[ $lab_state == hardened ]] && running prober && running "$host"; then
    run "probe-$host" python bench/probe_bench.py --lab-host "$host" --netns prober --pause 30 \
      --json "$OUT/probe-$host.json" "${probe_args[@]}"
    probe_jsons+=("$OUT/probe-$host.json")
  else
    status+=("probe-$host: skipped (lab not hardened, or $host or prober not running)")
  fi
done

# The zoo of foreign servers through the verify playbook, engine and nmap beside it in the same run
# (root: nsenter into zoo-prober; the bench holds the zoo lock, starts the zoo if it is down and
# then stops it again, and leaves a running zoo running).
read -ra zoo_args <<<"${ZOO_ARGS:-}"
if [[ $(id -u) == 0 ]]; then
  run zoo python bench/zoo_bench.py --json "$OUT/zoo.json" "${zoo_args[@]}"
else
  status+=("zoo: skipped (needs root for nsenter into zoo-prober)")
fi

args=()
[[ -f $OUT/lab.json ]] && args+=(--lab "$OUT/lab.json")
[[ -f $OUT/zoo.json ]] && args+=(--zoo "$OUT/zoo.json")
[[ -f $OUT/fleet.json ]] && args+=(--fleet "$OUT/fleet.json")
[[ -f $OUT/converge.json ]] && args+=(--converge "$OUT/converge.json")
for json in "${probe_jsons[@]}"; do
  [[ -f $json ]] && args+=(--probe "$json")
done
run render python bench/render_doc.py "${args[@]}"
printf '%s\n' "${status[@]}"
