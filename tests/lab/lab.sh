#!/usr/bin/env bash
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The mailsec.relay lab: real Postfix and Exim hosts in podman containers on an internal
# documentation-range network, a prober with a canary sink, and a smoke test.
#
#   lab.sh host-setup          install podman & co. when missing; containers.conf only if needed
#   lab.sh images [SUITE...]   build (or reuse) the base, postfix, exim and prober images per
#                              Debian suite (default: $MAILSEC_SUITES or "bookworm trixie")
#   lab.sh net lab|molecule    create the internal test network if missing
#   lab.sh up                  (re)start the demo fleet (mixed suites) with stock MTAs routed to the sink
#   lab.sh down [lab|molecule] remove the lab's containers and networks (default: both)
#   lab.sh smoke               EHLO every MTA from the prober; non-zero on any failure
#   lab.sh status              show the lab's containers and networks
#
# Every name this script creates is listed below; it removes things only by those names.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# One recipe for every Debian release the collection supports: the suite is a parameter.
# Images are localhost/mailsec-<name>:<suite>, e.g. mailsec-postfix:trixie.
SUPPORTED_SUITES=(bookworm trixie)
read -r -a SUITES <<<"${MAILSEC_SUITES:-${SUPPORTED_SUITES[*]}}"
# The demo fleet's default release (a host's own suite is the 4th FLEET field).
DEFAULT_SUITE=trixie
base_image() { echo "localhost/mailsec-base:$1"; }
# The base recipe is hashed into a label: change it here and the base (and all on top) rebuild.
base_recipe() { echo "debootstrap --variant=minbase --include=python3,iproute2 $1"; }
IMAGES=(postfix exim prober)
INPUTS_LABEL=io.mailsec.inputs

declare -A NET_NAME=([lab]=mailsec-lab [molecule]=mailsec-molecule)
declare -A NET_V4=([lab]=198.51.100.0/25 [molecule]=203.0.113.0/24)
declare -A NET_V6=([lab]=2001:db8:25::/64 [molecule]=2001:db8:26::/64)

# The demo fleet: container name, image, last address octet/hextet (v4 198.51.100.N, v6 2001:db8:25::N),
# Debian suite. A mixed fleet, as during an upgrade cycle: trixie by default, bookworm hosts beside.
FLEET=(
  "mx1 postfix 11 trixie"
  "hub1 postfix 12 bookworm"
  "legacy1 postfix 13 trixie"
  "exim1 exim 14 trixie"
  "prober prober 100 trixie"
)
LAB_DOMAIN=example.test
PROBER_EXTRA=(50 51)   # extra prober source addresses: trusted (.50) and never-relay (.51) vantages
SINK_V4=198.51.100.100

log() { printf 'lab: %s\n' "$*" >&2; }
die() { printf 'lab: ERROR: %s\n' "$*" >&2; exit 1; }

need_root() { [[ $(id -u) -eq 0 ]] || die "run as root (podman here runs rootful)"; }

# Wait for every background job given by PID; fail if any failed, but only after all ended.
wait_all() {
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return "$failed"
}

# ---------------------------------------------------------------------------------------------
cmd_host_setup() {
  need_root
  local -a missing=()
  local pkg
  for pkg in podman runc debootstrap nmap swaks shellcheck; do
    # (no `| grep -q` under pipefail: grep leaving early can SIGPIPE the writer, exit 141)
    [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == *'install ok installed'* ]] || missing+=("$pkg")
  done
  if ((${#missing[@]})); then
    log "installing: ${missing[*]}"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  else
    log "packages present: podman runc debootstrap nmap swaks shellcheck"
  fi

  # containers.conf: some machines (root without CAP_SYS_RESOURCE, hybrid cgroups) cannot start
  # any container with podman's defaults. We never touch an existing file (it is the admin's),
  # and write ours only when a trial container with the current defaults fails. The trial
  # needs no image: an overlay over the host's own root running /bin/true, with no network.
  local conf=/etc/containers/containers.conf
  if [[ -e $conf ]]; then
    log "$conf exists: left as it is"
  elif podman_trial; then
    log "podman works with its defaults: $conf not needed"
  else
    log "podman cannot start containers with its defaults here: writing $conf (runc, ulimits)"
    mkdir -p /etc/containers
    cat >"$conf" <<'EOF'
# Written by mailsec.relay tests/lab/lab.sh host-setup: podman's defaults failed on this machine
# (root lacks CAP_SYS_RESOURCE, so default rlimits cannot be set; crun fails on hybrid cgroups).
[containers]
default_ulimits = ["nproc=4096:4096", "nofile=1024:1024"]
[engine]
runtime = "runc"
EOF
    podman_trial || die "podman still cannot start a container with $conf"
  fi
  log "host ready"
}

podman_trial() { podman run --rm --network none --rootfs /:O /bin/true >/dev/null 2>&1; }

# ---------------------------------------------------------------------------------------------
image_label() { podman image inspect --format "{{index .Labels \"$INPUTS_LABEL\"}}" "$1" 2>/dev/null || true; }

build_base() {
  local suite=$1 want have mirror tmp image recipe_text
  image=$(base_image "$suite")
  recipe_text=$(base_recipe "$suite")
  want=$(printf '%s\n' "$recipe_text" | sha256sum | cut -c1-16)
  have=$(image_label "$image")
  if [[ $have == "$want" ]]; then
    log "$image: cached ($want)"
    return
  fi
  command -v debootstrap >/dev/null || die "debootstrap missing: run '$0 host-setup'"
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  log "$image: building by debootstrap from $mirror (label ${have:-none} -> $want)"
  tmp=$(mktemp -d /var/tmp/mailsec-base.XXXXXX)
  # shellcheck disable=SC2064  # expand $tmp now: the trap must remove this very directory
  trap "rm -rf '$tmp'" RETURN
  read -r -a recipe <<<"$recipe_text"
  "${recipe[@]}" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1 \
    || { tail -20 "$tmp/debootstrap.log" >&2; die "debootstrap of $suite failed"; }
  # Drop downloaded packages and the build host's name/resolver: podman provides its own.
  rm -rf "$tmp"/rootfs/var/cache/apt/archives/*.deb "$tmp"/rootfs/var/lib/apt/lists/* \
         "$tmp/rootfs/etc/resolv.conf" "$tmp/rootfs/etc/hostname"
  tar -C "$tmp/rootfs" -c . | podman import --quiet \
    --change "LABEL $INPUTS_LABEL=$want" --change 'CMD ["sleep", "infinity"]' - "$image" >/dev/null
}

# Hash of everything an image is made of: its Containerfile, every COPY source (relative to the
# build context tests/lab/), and the base image it starts from.
image_inputs_hash() {
  local containerfile=$1 suite=$2 src
  {
    cat "$containerfile"
    while read -r src; do
      [[ -f $LAB_DIR/$src ]] || die "$containerfile copies $src, which does not exist"
      cat "$LAB_DIR/$src"
    done < <(awk '$1 == "COPY" { for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "$containerfile")
    podman image inspect --format '{{.Id}}' "$(base_image "$suite")"
  } | sha256sum | cut -c1-16
}

build_image() {
  local name=$1 suite=$2 image="localhost/mailsec-$1:$2" containerfile="$LAB_DIR/images/$1.Containerfile"
  local want have
  want=$(image_inputs_hash "$containerfile" "$suite")
  have=$(image_label "$image")
  if [[ $have == "$want" ]]; then
    log "$image: cached ($want)"
    return
  fi
  log "$image: building (label ${have:-none} -> $want)"
  # Host network for the build only: apt must reach Debian, and podman's default network
  # (a private range) stays unused.
  # --from: the Containerfile names the bookworm base; every suite builds on its own base.
  local build_log="/var/tmp/mailsec-build-$name-$suite.log"
  podman build --pull=never --network host --label "$INPUTS_LABEL=$want" --from "$(base_image "$suite")" \
    -f "$containerfile" -t "$image" "$LAB_DIR" >"$build_log" 2>&1 \
    || { tail -30 "$build_log" >&2; die "build of $image failed (log: $build_log)"; }
}

cmd_images() {
  need_root
  local suite name start
  local -a suites=("$@") pids=()
  ((${#suites[@]})) || suites=("${SUITES[@]}")
  for suite in "${suites[@]}"; do
    [[ " ${SUPPORTED_SUITES[*]} " == *" $suite "* ]] || die "unknown suite '$suite' (supported: ${SUPPORTED_SUITES[*]})"
  done
  start=$SECONDS
  # Suites build side by side (debootstrap and apt mostly wait on the network); within a suite the
  # images follow their base.
  for suite in "${suites[@]}"; do
    (
      build_base "$suite"
      for name in "${IMAGES[@]}"; do build_image "$name" "$suite"; done
    ) &
    pids+=($!)
  done
  wait_all "${pids[@]}" || die "image build failed"
  log "images ready in $((SECONDS - start)) s (${suites[*]})"
}

# ---------------------------------------------------------------------------------------------
cmd_net() {
  need_root
  local which=${1:-} name subnets
  [[ -n ${NET_NAME[$which]:-} ]] || die "usage: $0 net lab|molecule"
  name=${NET_NAME[$which]}
  if podman network exists "$name"; then
    subnets=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}{{.Internal}}' "$name")
    [[ $subnets == "${NET_V4[$which]} ${NET_V6[$which]} true" ]] \
      || die "network $name exists but is not what the lab needs ($subnets): run '$0 down $which'"
    log "network $name: present"
    return
  fi
  # --internal: no default route and no NAT in the containers, so nothing can leave the machine.
  # --disable-dns: no aardvark-dns, which would forward lookups to the host's resolver.
  # Two Molecule lanes may ask at the same moment: losing that race to the other lane is fine.
  if ! podman network create --internal --disable-dns --ipv6 \
    --subnet "${NET_V4[$which]}" --subnet "${NET_V6[$which]}" "$name" >/dev/null; then
    podman network exists "$name" || die "could not create network $name"
    log "network $name: created by a concurrent run"
    return
  fi
  log "network $name: created (${NET_V4[$which]}, ${NET_V6[$which]}, internal)"
}

# ---------------------------------------------------------------------------------------------
fleet_names() { local entry; for entry in "${FLEET[@]}"; do echo "${entry%% *}"; done; }

# Suites the demo fleet runs on (each needs its images).
fleet_suites() { local entry name image n suite; for entry in "${FLEET[@]}"; do read -r name image n suite <<<"$entry"; echo "${suite:-$DEFAULT_SUITE}"; done | sort -u; }

# /etc/hosts for every lab container: lookups of lab names never need DNS.
hosts_file() {
  local entry name image n suite extra
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
  for entry in "${FLEET[@]}"; do
    read -r name image n suite <<<"$entry"
    printf '198.51.100.%s\t%s.%s %s\n2001:db8:25::%s\t%s.%s %s\n' "$n" "$name" "$LAB_DOMAIN" "$name" "$n" "$name" "$LAB_DOMAIN" "$name"
  done
  for extra in "${PROBER_EXTRA[@]}"; do
    printf '198.51.100.%s\tprober%s.%s\n' "$extra" "$extra" "$LAB_DOMAIN"
  done
}

run_container() {
  local name=$1 image=$2 n=$3 suite=$4
  local -a extra=()
  [[ $name == prober ]] && extra=(--cap-add NET_ADMIN)
  # --no-hosts: /etc/hosts is written below, without podman's host.containers.internal entry.
  # --dns 127.0.0.1: nothing listens there, so every DNS lookup fails at once instead of timing out.
  podman run -d --name "$name" --hostname "$name.$LAB_DOMAIN" \
    --network "${NET_NAME[lab]}" --ip "198.51.100.$n" --ip6 "2001:db8:25::$n" \
    --dns 127.0.0.1 --dns-search . --no-hosts --label io.mailsec.lab=demo \
    --label "io.mailsec.suite=$suite" "${extra[@]}" "localhost/mailsec-$image:$suite" sleep infinity >/dev/null
}

# Start the stock daemons. Only the smarthost changes: every non-local message goes to the sink.
start_mta() {
  local name=$1 image=$2
  local hosts
  hosts=$(hosts_file)
  podman exec -i "$name" sh -c 'cat > /etc/hosts' <<<"$hosts"
  case $image in
    postfix)
      local -a settings=("relayhost = [$SINK_V4]:25")
      # legacy1 keeps a legacy "trust the world" mynetworks: a deliberate open relay.
      [[ $name == legacy1 ]] && settings+=("mynetworks = 0.0.0.0/0 [::]/0")
      podman exec "$name" sh -c 'hostname > /etc/mailname && postconf -e "$@" && postfix start' sh "${settings[@]}" >/dev/null 2>&1 \
        || die "$name: postfix did not start"
      ;;
    exim)
      podman exec "$name" sh -c "hostname > /etc/mailname \
        && sed -i \"s/^dc_smarthost=.*/dc_smarthost='$SINK_V4::25'/\" /etc/exim4/update-exim4.conf.conf \
        && update-exim4.conf && service exim4 start" >/dev/null 2>&1 || die "$name: exim did not start"
      ;;
    prober)
      local n cmds="set -e"
      for n in "${PROBER_EXTRA[@]}"; do
        cmds+="; ip addr replace 198.51.100.$n/24 dev eth0; ip -6 addr replace 2001:db8:25::$n/64 dev eth0 nodad"
      done
      podman exec "$name" sh -c "$cmds; canary-sink --daemon" >/dev/null || die "$name: canary sink did not start"
      ;;
  esac
  log "$name: started"
}

cmd_up() {
  need_root
  local start=$EPOCHREALTIME entry name image n suite
  local -a names pids=() suites
  mapfile -t suites < <(fleet_suites)
  cmd_images "${suites[@]}"
  cmd_net lab
  mapfile -t names < <(fleet_names)
  podman rm -f -t 0 --ignore "${names[@]}" >/dev/null
  for entry in "${FLEET[@]}"; do
    read -r name image n suite <<<"$entry"
    run_container "$name" "$image" "$n" "${suite:-$DEFAULT_SUITE}" &
    pids+=($!)
  done
  wait_all "${pids[@]}" || die "could not start the lab containers"
  pids=()
  for entry in "${FLEET[@]}"; do
    read -r name image n _ <<<"$entry"
    start_mta "$name" "$image" &
    pids+=($!)
  done
  wait_all "${pids[@]}" || die "could not start the lab daemons"
  lab_smoke --wait 20 --quiet || die "the lab MTAs do not answer on port 25"
  log "lab up in $(elapsed "$start") s"
}

elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------------------------------------
cmd_down() {
  need_root
  local which=${1:-all} key net
  local -a keys=(lab molecule) names=()
  [[ $which == all ]] || keys=("$which")
  for key in "${keys[@]}"; do
    net=${NET_NAME[$key]:-}
    [[ -n $net ]] || die "usage: $0 down [lab|molecule]"
    if [[ $key == lab ]]; then
      mapfile -t names < <(fleet_names)
    else
      names=()
    fi
    # Containers left on the network (e.g. by an interrupted Molecule run), found by name.
    if podman network exists "$net"; then
      mapfile -t -O "${#names[@]}" names < <(podman ps -a --filter "network=$net" --format '{{.Names}}')
    fi
    if ((${#names[@]})); then
      mapfile -t names < <(printf '%s\n' "${names[@]}" | sort -u)
      podman rm -f -t 0 --ignore "${names[@]}" >/dev/null
      log "removed containers: ${names[*]}"
    fi
    if podman network exists "$net"; then
      podman network rm "$net" >/dev/null
      log "removed network $net"
    fi
  done
  cmd_status
}

cmd_status() {
  local -a names
  mapfile -t names < <(fleet_names)
  local fleet_re
  fleet_re="^($(IFS='|'; echo "${names[*]}")) "
  echo "containers:"
  podman ps -a --format '{{.Names}} {{.Status}} {{.Networks}}' | grep -E "$fleet_re|mailsec-" | sed 's/^/  /' || echo "  (none)"
  echo "networks:"
  podman network ls --format '{{.Name}}' | grep -E '^mailsec-' | sed 's/^/  /' || echo "  (none)"
}

# ---------------------------------------------------------------------------------------------
# Smoke: from the prober, banner + EHLO on every MTA address; DNS fails fast; no egress route.
lab_smoke() {
  local entry name image n _
  local -a targets=()
  for entry in "${FLEET[@]}"; do
    read -r name image n _ <<<"$entry"
    [[ $image == prober ]] && continue
    targets+=("$name=198.51.100.$n" "$name=2001:db8:25::$n")
  done
  podman exec -i prober python3 - "$@" "${targets[@]}" <"$LAB_DIR/smoke.py"
}

cmd_smoke() {
  need_root
  local entry name image n _ failed=0 routes
  podman container exists prober || die "the lab is not up: run '$0 up'"
  lab_smoke --wait 5 || failed=1
  # A name lookup inside an MTA must fail in well under a second (no DNS in the lab), or every
  # SMTP session would wait for resolver timeouts.
  for entry in "${FLEET[@]}"; do
    read -r name image n _ <<<"$entry"
    [[ $image == prober ]] && continue
    if podman exec "$name" python3 -c '
import socket, sys, time
t = time.monotonic()
try:
    socket.getaddrinfo("relay-check.example.net", 25)
    ok = False
except socket.gaierror:
    ok = True
d = time.monotonic() - t
print("%-8s dns      %s lookup of relay-check.example.net failed in %.3f s" % (sys.argv[1], "OK  " if ok and d < 1 else "FAIL", d))
sys.exit(0 if ok and d < 1 else 1)' "$name"; then :; else failed=1; fi
  done
  # No container on the lab network may have a route off it.
  routes=$(podman exec prober sh -c 'ip -4 route show default; ip -6 route show default')
  if [[ -z $routes ]]; then
    printf '%-8s egress   OK   no default route (v4, v6) on %s\n' prober "${NET_NAME[lab]}"
  else
    printf '%-8s egress   FAIL default route present: %s\n' prober "$routes"
    failed=1
  fi
  ((failed == 0)) || die "smoke failed"
  log "smoke passed"
}

# ---------------------------------------------------------------------------------------------
usage() { sed -n '4,14p' "$0" | sed 's/^# \{0,1\}//'; }

# Commands that change the lab take a machine-wide lock: two `up`s at once (two people, or a
# demo and a Molecule run) would otherwise remove each other's containers halfway.
LOCK_FILE=/run/lock/mailsec-lab.lock
take_lock() {
  [[ -n ${MAILSEC_LAB_LOCKED:-} ]] && return
  export MAILSEC_LAB_LOCKED=1
  exec flock -w 600 -E 75 "$LOCK_FILE" "$0" "$@"
}

main() {
  local cmd=${1:-}
  case $cmd in
    host-setup | images | up) take_lock "$@" ;;
    # The Molecule network is guarded by the Molecule lock, which tests/run_all.sh holds around
    # `net molecule`, the scenario and `down molecule`: waiting for the lab's lock there would
    # stall every scenario while a demo or a benchmark holds the lab.
    net | down) [[ ${2:-} == molecule ]] || take_lock "$@" ;;
  esac
  shift || true
  case $cmd in
    host-setup) cmd_host_setup "$@" ;;
    images) cmd_images "$@" ;;
    net) cmd_net "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    smoke) cmd_smoke "$@" ;;
    status) cmd_status "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
