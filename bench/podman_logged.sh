#!/usr/bin/env bash
# podman that appends one line per call to $BENCH_PODMAN_LOG: start end verb (the connection
# plugin's round trips to a container: exec, cp). Used as ansible_podman_executable by the benches.
start=$(date +%s.%N)
podman "$@"
rc=$?
if [[ -n ${BENCH_PODMAN_LOG:-} ]]; then
  verb=$1
  [[ $verb == exec && $# -ge 3 ]] && verb="exec"
  printf '%s %s %s\n' "$start" "$(date +%s.%N)" "$verb" >>"$BENCH_PODMAN_LOG"
fi
exit $rc
