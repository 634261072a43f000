#!/usr/bin/env bash
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# Test stages of mailsec.relay.  `tests/run_all.sh` runs every stage, even after a failure, then
# prints each stage's summary line in a table and exits non-zero if any stage failed.
# `tests/run_all.sh unit` (or lint, sanity, integration, molecule) runs one stage the same way.
# A stage with nothing to run (no unit tests collected, no Molecule scenario) is reported as
# SKIP: visible in the table, not a failure.
# Expects the venv and the collection link from `make setup` (and images for molecule).
# shellcheck disable=SC2317  # stage_* and summary_* functions are called by name
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
LOGS=$ROOT/.cache/test-logs
ALL_STAGES=(lint sanity unit integration molecule)
SKIP_RC=200   # internal: the stage found nothing to run

cd "$ROOT" || exit 2
# shellcheck disable=SC1091
source "$VENV/bin/activate"
mkdir -p "$LOGS"
# Plain logs, so summary lines can be found in them.
export NO_COLOR=1 PY_COLORS=0 ANSIBLE_NOCOLOR=1 ANSIBLE_FORCE_COLOR=0

# Each stage_* function runs its tool; summary_* extracts that tool's own summary line from the log.
# ansible-lint puts ~/.ansible/collections first in the collection path: a copy of mailsec.relay
# installed there (an old release, a Molecule prerun) would be linted against instead of this
# checkout. A HOME of its own keeps the lint about this tree.
# ruff (ruff.toml) first: Python lint and format check of the whole tree; its failures count,
# ansible-lint still runs.
stage_lint() {
  local rc=0
  ruff check . || rc=1
  ruff format --check . || rc=1
  mkdir -p "$ROOT/.cache/lint-home" && HOME="$ROOT/.cache/lint-home" ansible-lint --profile production || rc=1
  return "$rc"
}
summary_lint() {
  local log ruff fmt
  log=$(cat "$1")  # $1 is a pipe: read it once
  ruff=$(grep -E '^(All checks passed!|Found [0-9]+ error)' <<<"$log" | tail -1)
  fmt=$(grep -E '^([0-9]+ files? already formatted|[0-9]+ files? would be reformatted)' <<<"$log" | tail -1)
  echo "ruff: ${ruff:-not run}; ruff format: ${fmt:-not run}; ansible-lint: $(grep -E '^(Passed|Failed):' <<<"$log" | tail -1)"
}

stage_sanity() { "$ROOT/tests/sanity.sh"; }
summary_sanity() { grep -E '^sanity: ' "$1" | tail -1; }

stage_unit() {
  python -m pytest "${UNIT_TESTS:-tests/unit}" -q -p no:cacheprovider
  local rc=$?
  # pytest exit 5: no tests were collected.
  ((rc == 5)) && return "$SKIP_RC"
  return "$rc"
}
# Integration: the collection built and installed offline, the lab's life cycle, the verify role
# against fake servers, the execution environment. Needs the images (make test builds them).
stage_integration() {
  python -m pytest tests/integration -q -p no:cacheprovider -rs
  local rc=$?
  ((rc == 5)) && return "$SKIP_RC"
  return "$rc"
}
summary_integration() { summary_unit "$@"; }

summary_unit() { grep -E '^=*.*(passed|failed|error|no tests ran).* in [0-9.]+s' "$1" | tail -1 | tr -d '='; }

# One Molecule run: scenario $1 on suite $2, output in its own log. Runs in other checkouts are kept
# apart by locks in /run/lock: every run holds mailsec-molecule.lock shared (an exclusive holder
# removes the network only when no run is left) and its group's lock exclusively (scenarios of one
# group share addresses, see tests/molecule_lanes.py). The network is made inside the locks, and
# containers of the group that a killed run left there are removed (the lock says none is in use).
molecule_run() {
  local scenario=$1 suite=$2 lock=$3 log=$4 start=$SECONDS
  # shellcheck disable=SC2016  # $1 to $3 are the inner sh's arguments
  if MOLECULE_SUITE=$suite flock -s -w 3600 /run/lock/mailsec-molecule.lock \
    flock -w 3600 "/run/lock/mailsec-molecule-$lock.lock" \
    sh -c '"$1" net molecule && python "$2" --clear-stale "$3" && exec molecule test -s "$3"' \
    sh "$ROOT/tests/lab/lab.sh" "$ROOT/tests/molecule_lanes.py" "$scenario" >"$log" 2>&1; then
    printf '%s\t%s\t%d\tPASSED\n' "$scenario" "$suite" $((SECONDS - start))
  else
    printf '%s\t%s\t%d\tFAILED\n' "$scenario" "$suite" $((SECONDS - start))
  fi
}

# One lane: its groups one after the other, each scenario on each suite; one result line per run.
molecule_lane() {
  local entry lock names scenario suite
  local -a group
  for entry in "$@"; do
    lock=${entry%%:*} names=${entry#*:}
    IFS=, read -r -a group <<<"$names"
    for scenario in "${group[@]}"; do
      for suite in "${suites[@]}"; do
        echo "=== molecule scenario: $scenario on $suite (log $MOLECULE_LOGS/$scenario-$suite.log)" >&2
        molecule_run "$scenario" "$suite" "$lock" "$MOLECULE_LOGS/$scenario-$suite.log"
      done
    done
  done
}

stage_molecule() {
  local file scenario suite rc=0 passed=0 failed=0 lane seconds result i
  local -a scenarios=() suites=() lane_lines=() pids=()
  for file in molecule/*/molecule.yml; do
    [[ -e $file ]] && scenarios+=("$(basename "$(dirname "$file")")")
  done
  # MOLECULE_SCENARIOS="a b" runs a subset (developers); CI runs every scenario found.
  [[ -n ${MOLECULE_SCENARIOS:-} ]] && read -r -a scenarios <<<"$MOLECULE_SCENARIOS"
  # The platform matrix: every scenario runs once per Debian suite (its molecule.yml takes the
  # images localhost/mailsec-*:${MOLECULE_SUITE}). MOLECULE_SUITES="trixie" runs one suite.
  read -r -a suites <<<"${MOLECULE_SUITES:-bookworm trixie}"
  if ((${#scenarios[@]} == 0)); then
    echo "molecule: no scenarios found (molecule/*/molecule.yml)"
    return "$SKIP_RC"
  fi
  # The images of every suite must exist (`make molecule` / `make test` build them first).
  local image
  for suite in "${suites[@]}"; do
    for image in postfix exim prober; do
      podman image exists "localhost/mailsec-$image:$suite" ||
        { echo "molecule: image localhost/mailsec-$image:$suite missing: run tests/lab/lab.sh images $suite"; return 1; }
    done
  done
  # Lanes run at the same time (MOLECULE_LANES, default 2: a scenario keeps about one core busy);
  # scenarios that share addresses are in one lane.
  MOLECULE_LOGS=$LOGS/molecule
  mkdir -p "$MOLECULE_LOGS"
  rm -f "$MOLECULE_LOGS"/lane-*.tsv
  mapfile -t lane_lines < <(python tests/molecule_lanes.py --lanes "${MOLECULE_LANES:-2}" "${scenarios[@]}")
  for i in "${!lane_lines[@]}"; do
    echo "molecule: lane $((i + 1)): ${lane_lines[$i]}"
    read -r -a lane <<<"${lane_lines[$i]}"
    molecule_lane "${lane[@]}" >"$MOLECULE_LOGS/lane-$i.tsv" &
    pids+=($!)
  done
  wait "${pids[@]}"
  # Results, and the end of every failed run's log (CI shows only this stage's output).
  local -a timings=()
  while IFS=$'\t' read -r scenario suite seconds result; do
    timings+=("$(printf '  %-24s %-9s %s %4d s' "$scenario" "$suite" "$result" "$seconds")")
    if [[ $result == PASSED ]]; then
      passed=$((passed + 1))
    else
      failed=$((failed + 1))
      rc=1
      echo "molecule: scenario $scenario on $suite FAILED in $seconds s; the end of its log:"
      tail -n 80 "$MOLECULE_LOGS/$scenario-$suite.log" | sed 's/^/    /'
    fi
  done < <(cat "$MOLECULE_LOGS"/lane-*.tsv)
  # The weights of the next run's lanes: this run's times, and earlier ones of runs not made now.
  local times=$LOGS/molecule-times.tsv
  cat "$MOLECULE_LOGS"/lane-*.tsv >"$times.now"
  touch "$times"
  awk -F '\t' 'NR == FNR { done[$1 FS $2] = 1; next } !($1 FS $2 in done)' "$times.now" "$times" >"$times.kept"
  cat "$times.now" "$times.kept" >"$times" && rm -f "$times.now" "$times.kept"
  # Leave no network behind, unless a run in another checkout still uses it (it holds the shared lock).
  flock -x -n /run/lock/mailsec-molecule.lock "$ROOT/tests/lab/lab.sh" down molecule >/dev/null 2>&1 ||
    echo "molecule: the mailsec-molecule network stays (another run uses it, or it could not be removed)"
  echo "molecule: time per scenario and suite (lanes in parallel)"
  printf '%s\n' "${timings[@]}"
  echo "molecule: ${#scenarios[@]} scenarios x ${#suites[@]} suites (${suites[*]}), $passed passed, $failed failed"
  return "$rc"
}
summary_molecule() { grep -E '^molecule: ([0-9]+ scenarios|no scenarios)' "$1" | tail -1; }

declare -A RESULT SECONDS_TAKEN SUMMARY

run_stage() {
  local stage=$1 log=$LOGS/$1.log start=$SECONDS rc
  echo
  echo "################ $stage ################"
  "stage_$stage" </dev/null 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  SECONDS_TAKEN[$stage]=$((SECONDS - start))
  case $rc in
    0) RESULT[$stage]=PASS ;;
    "$SKIP_RC") RESULT[$stage]=SKIP ;;
    *) RESULT[$stage]=FAIL ;;
  esac
  SUMMARY[$stage]=$("summary_$stage" <(sed 's/\x1b\[[0-9;]*m//g' "$log"))
  [[ -n ${SUMMARY[$stage]} ]] || SUMMARY[$stage]="(no summary line; exit $rc, log $log)"
  [[ ${RESULT[$stage]} == SKIP && $stage == unit ]] && SUMMARY[$stage]="SKIP: pytest collected no tests in ${UNIT_TESTS:-tests/unit}"
  echo "$stage: ${RESULT[$stage]} - ${SUMMARY[$stage]}"
}

stages=("$@")
((${#stages[@]})) || stages=("${ALL_STAGES[@]}")
for stage in "${stages[@]}"; do
  declare -F "stage_$stage" >/dev/null || { echo "unknown stage: $stage (known: ${ALL_STAGES[*]})" >&2; exit 2; }
done

failed=0
for stage in "${stages[@]}"; do
  run_stage "$stage"
  [[ ${RESULT[$stage]} == FAIL ]] && failed=1
done

echo
printf '%-9s %-6s %7s  %s\n' STAGE RESULT SECONDS SUMMARY
for stage in "${stages[@]}"; do
  printf '%-9s %-6s %7s  %s\n' "$stage" "${RESULT[$stage]}" "${SECONDS_TAKEN[$stage]}" "${SUMMARY[$stage]}"
done
echo "logs: $LOGS"
exit "$failed"
