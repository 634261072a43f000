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

stage_molecule() {
  local file scenario suite rc=0 passed=0 failed=0 start
  local -a scenarios=() suites=() timings=()
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
  local -a scenario_suites
  for scenario in "${scenarios[@]}"; do
    # A scenario whose images do not follow MOLECULE_SUITE (the brownfield host is built for one
    # release) runs once, on the first suite asked for.
    scenario_suites=("${suites[@]}")
    grep -q 'MOLECULE_SUITE' "molecule/$scenario/molecule.yml" || scenario_suites=("${suites[0]}")
    for suite in "${scenario_suites[@]}"; do
      echo "=== molecule scenario: $scenario on $suite"
      start=$SECONDS
      # Scenarios share the mailsec-molecule network and fixed addresses: one at a time per machine,
      # also across checkouts (a developer's run and a CI clone), hence a machine-wide lock. The
      # network is made inside the lock: another checkout's run removes it when it ends.
      # shellcheck disable=SC2016  # $1 and $2 are the inner sh's arguments
      if MOLECULE_SUITE=$suite flock -w 3600 /run/lock/mailsec-molecule.lock \
        sh -c '"$1" net molecule && exec molecule test -s "$2"' sh "$ROOT/tests/lab/lab.sh" "$scenario"; then
        echo "molecule: scenario $scenario on $suite PASSED in $((SECONDS - start)) s"
        timings+=("$(printf '  %-24s %-9s PASSED %4d s' "$scenario" "$suite" $((SECONDS - start)))")
        passed=$((passed + 1))
      else
        echo "molecule: scenario $scenario on $suite FAILED in $((SECONDS - start)) s"
        timings+=("$(printf '  %-24s %-9s FAILED %4d s' "$scenario" "$suite" $((SECONDS - start)))")
        failed=$((failed + 1))
        rc=1
      fi
    done
  done
  # Leave no network behind (scenarios keep it between them; the next run creates it again).
  flock -w 3600 /run/lock/mailsec-molecule.lock "$ROOT/tests/lab/lab.sh" down molecule >/dev/null 2>&1 ||
    echo "molecule: could not remove the mailsec-molecule network"
  echo "molecule: time per scenario and suite"
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
