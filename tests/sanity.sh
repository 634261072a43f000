#!/usr/bin/env bash
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# ansible-test sanity on a copy of the working tree laid out as ansible_collections/mailsec/relay
# (ansible-test needs that path). The copy holds tracked and untracked-but-not-ignored files, so
# work in progress is checked too. It lives outside the checkout: inside it, ansible-test would
# list files with the checkout's git and see none (.cache is ignored). ansible-test's
# tests/output/ is copied back to .cache/sanity-output/ for reading, never into the tree.
# Extra arguments go to ansible-test (e.g. `tests/sanity.sh --test validate-modules`).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
PYTHON_VERSION=${SANITY_PYTHON:-3.11}
OUTPUT=$ROOT/.cache/sanity-output
WORK=$(mktemp -d "${TMPDIR:-/tmp}/mailsec-sanity.XXXXXX")
DEST=$WORK/ansible_collections/mailsec/relay
# shellcheck disable=SC2064  # expand now: remove exactly this run's copy
trap "rm -rf '$WORK'" EXIT

# shellcheck disable=SC1091
source "$VENV/bin/activate"

# ansible-test bootstraps pip in every test venv from a cached get-pip script it cannot download
# here; put the offline stand-in there unless a real script is already cached.
pip_version=$(python - <<'PY'
import inspect, re
from ansible_test._internal import python_requirements as pr
print(re.search(r"pip='([0-9.]+)'", inspect.getsource(pr.get_venv_packages)).group(1))
PY
)
cache=~/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [[ ! -e $cache ]]; then
  mkdir -p "$(dirname "$cache")"
  cp "$ROOT/tests/sanity_get_pip.py" "$cache"
  echo "sanity: installed offline pip bootstrap stand-in at $cache"
fi

mkdir -p "$DEST"
# Tracked + untracked files minus .gitignore'd ones; skip tracked files deleted in the worktree.
# Sanity covers what ships (plugins, roles, playbooks, meta, docs) and the unit tests; the lab,
# Molecule scenarios, integration tests and benchmarks are build_ignore'd developer tooling with
# their own checks (shellcheck, ansible-lint, pytest).
not_shipped='^(bench|molecule|tests/lab|tests/integration|tests/unit/fixtures)/'
(cd "$ROOT" && git ls-files -z -co --exclude-standard | while IFS= read -r -d '' f; do
  [[ $f =~ $not_shipped ]] && continue
  [[ -e $f || -L $f ]] && printf '%s\0' "$f"
done) | tar -C "$ROOT" --null -T - -cf - | tar -C "$DEST" -xf -

cd "$DEST"
log=$WORK/sanity.log
set +e
ansible-test sanity --local --python "$PYTHON_VERSION" --color no "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
rm -rf "$OUTPUT"
mkdir -p "$OUTPUT"
[[ -d tests/output ]] && cp -a tests/output/. "$OUTPUT/"
ran=$(grep -c "^Running sanity test " "$log" || true)
if ((rc == 0)); then
  echo "sanity: $ran tests run, all passed"
else
  echo "sanity: $ran tests run, $(grep -m1 -o 'The [0-9]* sanity test(s) listed below (out of [0-9]*) failed' "$log" || echo "ansible-test exited $rc")"
fi
exit "$rc"
