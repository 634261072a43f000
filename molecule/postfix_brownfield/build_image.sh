#!/usr/bin/env bash
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# Molecule dependency step of postfix_brownfield: build (or reuse) localhost/mailsec-brownfield:$MOLECULE_SUITE
# (bookworm or trixie, the platform matrix's suite; trixie by default) from this directory's Containerfile on top of the lab base image. Cached by a content-hash label,
# like tests/lab/lab.sh does for the lab images.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# The lab's Molecule network first (documentation ranges, internal): the podman driver would make a
# missing one on podman's default, private subnet.
"$HERE/../../tests/lab/lab.sh" net molecule
SUITE=${MOLECULE_SUITE:-trixie}
IMAGE=localhost/mailsec-brownfield:$SUITE
BASE=localhost/mailsec-base:$SUITE
LABEL=io.mailsec.inputs
podman image exists "$BASE" || { echo "build_image: $BASE missing: run tests/lab/lab.sh images first" >&2; exit 1; }
want=$({ cat "$HERE/Containerfile"; echo "$SUITE"; podman image inspect --format '{{.Id}}' "$BASE"; } | sha256sum | cut -c1-16)
have=$(podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$IMAGE" 2>/dev/null || true)
if [[ $have == "$want" ]]; then
  echo "build_image: $IMAGE cached ($want)"
  exit 0
fi
echo "build_image: building $IMAGE (label ${have:-none} -> $want)"
# Host network for the build only (apt must reach Debian's archive); the containers run on mailsec-molecule.
podman build --pull=never --network host --build-arg "SUITE=$SUITE" --label "$LABEL=$want" -f "$HERE/Containerfile" -t "$IMAGE" "$HERE" \
  >/var/tmp/mailsec-build-brownfield-$SUITE.log 2>&1 || { tail -30 /var/tmp/mailsec-build-brownfield-$SUITE.log >&2; exit 1; }
echo "build_image: $IMAGE built"
