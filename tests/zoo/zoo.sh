#!/usr/bin/env bash
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
#
# The zoo: FOREIGN mail servers (Postfix, Exim, OpenSMTPD, Sendmail from Debian 12's archive),
# configured from each MTA's own documentation and Debian's defaults - never by this collection's
# roles - on an internal documentation-range network, with a canary sink. The verifier is tested
# against them (tests/integration/test_zoo.py); tests/zoo/<server>/truth.yml says what each one
# really does.
#
#   zoo.sh images     build (or reuse) the zoo images (content-hash label, like tests/lab/lab.sh)
#   zoo.sh up         (re)start the zoo: network, sink, every server
#   zoo.sh down       remove the zoo's containers and network (by name)
#   zoo.sh status     show them
#   zoo.sh servers    list the servers (name image last-octet)
#
# Every name this script creates is listed below; it removes things only by those names.
set -euo pipefail

ZOO_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_SH=$ZOO_DIR/../lab/lab.sh

BASE_IMAGE=localhost/mailsec-base:bookworm
SINK_IMAGE=localhost/mailsec-prober:bookworm   # the lab's prober image: python3-aiosmtpd + canary_sink.py
INPUTS_LABEL=io.mailsec.inputs
NET=mailsec-zoo
NET_V4=198.51.100.128/25
NET_V6=2001:db8:27::/64
V4_PREFIX=198.51.100.
V6_PREFIX=2001:db8:27::
ZOO_DOMAIN=zoo.test
PROBER=zoo-prober    # runs the canary sink on port 25; the verifier probes from its network namespace
PROBER_N=130
SINK_V4=${V4_PREFIX}${PROBER_N}

# The servers: directory under tests/zoo (= container name zoo-<dir>), image, last octet/hextet.
# Each directory holds setup.sh (run inside the container at start), its config files, truth.yml.
SERVERS=(
  "postfix-stock postfix 140"
  "postfix-submission postfix 141"
  "postfix-postscreen postfix 142"
  "exim-stock exim 143"
  "exim-submission exim 144"
  "opensmtpd opensmtpd 145"
  "sendmail sendmail 146"
  "postfix-broad-mynetworks postfix 150"
  "postfix-sender-trick postfix 151"
  "exim-percent-hack exim 152"
  "postfix-extra-listener postfix 153"
  "postfix-ipv6-relay postfix 154"
  "postfix-accept-drop postfix 155"
  "postfix-auth-on-25 postfix 156"
  "postfix-auth-before-tls postfix 157"
  "postfix-weak-tls postfix 158"
  "postfix-inbound-broken postfix 159"
)
IMAGES=(postfix exim opensmtpd sendmail)
# ZOO_ONLY="name ..." starts only those servers (developers; the test starts them all).
if [[ -n ${ZOO_ONLY:-} ]]; then
  _all=("${SERVERS[@]}")
  SERVERS=()
  for _entry in "${_all[@]}"; do
    [[ " $ZOO_ONLY " == *" ${_entry%% *} "* ]] && SERVERS+=("$_entry")
  done
  unset _all _entry
fi

log() { printf 'zoo: %s\n' "$*" >&2; }
die() { printf 'zoo: ERROR: %s\n' "$*" >&2; exit 1; }
need_root() { [[ $(id -u) -eq 0 ]] || die "run as root (podman here runs rootful)"; }

wait_all() {
  local pid failed=0
  for pid in "$@"; do wait "$pid" || failed=1; done
  return "$failed"
}

# ---------------------------------------------------------------------------------------------
image_label() { podman image inspect --format "{{index .Labels \"$INPUTS_LABEL\"}}" "$1" 2>/dev/null || true; }

# Hash of the Containerfile, every COPY source (relative to tests/zoo/) and the base image's id.
image_inputs_hash() {
  local containerfile=$1 src
  {
    cat "$containerfile"
    while read -r src; do
      [[ -f $ZOO_DIR/$src ]] || die "$containerfile copies $src, which does not exist"
      cat "$ZOO_DIR/$src"
    done < <(awk '$1 == "COPY" { for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i }' "$containerfile")
    podman image inspect --format '{{.Id}}' "$BASE_IMAGE"
  } | sha256sum | cut -c1-16
}

build_image() {
  local name=$1 image="localhost/mailsec-zoo-$1:bookworm" containerfile="$ZOO_DIR/images/$1.Containerfile"
  local want have
  want=$(image_inputs_hash "$containerfile")
  have=$(image_label "$image")
  if [[ $have == "$want" ]]; then
    log "$image: cached ($want)"
    return
  fi
  log "$image: building (label ${have:-none} -> $want)"
  # Host network for the build only (apt must reach Debian); the zoo network stays internal.
  podman build --pull=never --network host --label "$INPUTS_LABEL=$want" \
    -f "$containerfile" -t "$image" "$ZOO_DIR" >"/var/tmp/mailsec-zoo-build-$name.log" 2>&1 \
    || { tail -30 "/var/tmp/mailsec-zoo-build-$name.log" >&2; die "build of $image failed (log: /var/tmp/mailsec-zoo-build-$name.log)"; }
  log "$image: built"
}

cmd_images() {
  need_root
  local name start
  local -a pids=()
  start=$SECONDS
  # The base and the sink image are the lab's: lab.sh builds them (cached by the same rule).
  if [[ $(image_label "$BASE_IMAGE") == "" || $(image_label "$SINK_IMAGE") == "" ]]; then
    "$LAB_SH" images
  fi
  for name in "${IMAGES[@]}"; do build_image "$name" & pids+=($!); done
  wait_all "${pids[@]}" || die "image build failed"
  log "images ready in $((SECONDS - start)) s"
}

# ---------------------------------------------------------------------------------------------
cmd_net() {
  local subnets
  if podman network exists "$NET"; then
    subnets=$(podman network inspect --format '{{range .Subnets}}{{.Subnet}} {{end}}{{.Internal}}' "$NET")
    [[ $subnets == "$NET_V4 $NET_V6 true" ]] || die "network $NET exists but is not the zoo's ($subnets): run '$0 down'"
    return
  fi
  # --internal: no route off the machine; --disable-dns: no resolver forwarding to the host.
  podman network create --internal --disable-dns --ipv6 --subnet "$NET_V4" --subnet "$NET_V6" "$NET" >/dev/null
  log "network $NET: created ($NET_V4, $NET_V6, internal)"
}

server_names() { local entry; for entry in "${SERVERS[@]}"; do echo "zoo-${entry%% *}"; done; }

# /etc/hosts for every zoo container: every zoo name resolves without DNS.
hosts_file() {
  local entry name image n
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n'
  printf '%s\tprober.%s\n%s\tprober.%s\n' "$SINK_V4" "$ZOO_DOMAIN" "$V6_PREFIX$PROBER_N" "$ZOO_DOMAIN"
  for entry in "${SERVERS[@]}"; do
    read -r name image n <<<"$entry"
    printf '%s\tmx.%s.%s\n%s\tmx.%s.%s\n' "$V4_PREFIX$n" "$name" "$ZOO_DOMAIN" "$V6_PREFIX$n" "$name" "$ZOO_DOMAIN"
  done
}

run_container() {
  local container=$1 image=$2 n=$3 fqdn=$4
  # --no-hosts: /etc/hosts is written below; --dns 127.0.0.1: nothing listens there, so every
  # DNS lookup fails at once (no resolver can be reached, none is needed).
  podman run -d --name "$container" --hostname "$fqdn" --network "$NET" \
    --ip "$V4_PREFIX$n" --ip6 "$V6_PREFIX$n" --dns 127.0.0.1 --dns-search . --no-hosts \
    --label io.mailsec.zoo=1 "$image" sleep infinity >/dev/null
}

start_prober() {
  run_container "$PROBER" "$SINK_IMAGE" "$PROBER_N" "prober.$ZOO_DOMAIN" || die "$PROBER: could not start"
  podman exec -i "$PROBER" sh -c 'cat > /etc/hosts' <<<"$(hosts_file)"
  podman exec "$PROBER" canary-sink --daemon --hostname "sink.canary.test" >/dev/null || die "$PROBER: canary sink did not start"
}

# One server: its container, its directory copied to /zoo/server and tests/zoo/common to
# /zoo/common, then its setup.sh (documentation configs + the zoo's plumbing + daemon start).
start_server() {
  local name=$1 image=$2 n=$3 container="zoo-$1" fqdn="mx.$1.$ZOO_DOMAIN" out
  run_container "$container" "localhost/mailsec-zoo-$image:bookworm" "$n" "$fqdn" || die "$container: could not start"
  podman exec -i "$container" sh -c 'cat > /etc/hosts' <<<"$(hosts_file)"
  podman cp "$ZOO_DIR/common" "$container:/zoo-common" >/dev/null
  podman cp "$ZOO_DIR/$name" "$container:/zoo-server" >/dev/null
  if ! out=$(podman exec -e ZOO_FQDN="$fqdn" -e ZOO_DOMAIN="$name.$ZOO_DOMAIN" -e ZOO_SINK="$SINK_V4" \
      -e ZOO_NET_V4="$NET_V4" -e ZOO_NET_V6="$NET_V6" -e ZOO_V4="$V4_PREFIX$n" -e ZOO_V6="$V6_PREFIX$n" \
      "$container" sh -e /zoo-server/setup.sh 2>&1); then
    printf '%s\n' "$out" | tail -20 >&2
    die "$container: setup.sh failed"
  fi
  log "$container: started ($V4_PREFIX$n, $V6_PREFIX$n)"
}

# From the prober: every server's declared listeners accept a connection and send a 220 line.
wait_ready() {
  local entry name image n port
  local -a targets=()
  for entry in "${SERVERS[@]}"; do
    read -r name image n <<<"$entry"
    # shellcheck disable=SC2013  # one port number per match
    for port in $(grep -oE 'port: *[0-9]+' "$ZOO_DIR/$name/truth.yml" | grep -oE '[0-9]+'); do
      targets+=("$name=$V4_PREFIX$n:$port")
    done
  done
  podman exec -i "$PROBER" python3 - "$1" "${targets[@]}" <<'PYEOF'
import socket, ssl, sys, time
deadline = time.monotonic() + float(sys.argv[1])
pending = dict((t, t.split("=", 1)[1]) for t in sys.argv[2:])
while pending and time.monotonic() < deadline:
    for name, hostport in list(pending.items()):
        host, port = hostport.rsplit(":", 1)
        try:
            sock = socket.create_connection((host, int(port)), timeout=2)
            if port == "465":
                ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
                sock = ctx.wrap_socket(sock)
            sock.settimeout(20)  # one connection per try: Sendmail counts every one (ClientRate)
            if sock.recv(4).startswith(b"220"):
                del pending[name]
            sock.close()
        except OSError:
            pass
    if pending:
        time.sleep(0.3)
for name in pending:
    print("not ready: %s" % name)
sys.exit(1 if pending else 0)
PYEOF
}

cmd_up() {
  need_root
  local start=$EPOCHREALTIME entry name image n
  local -a names pids=()
  cmd_images
  mapfile -t names < <(server_names)
  podman rm -f -t 0 --ignore "$PROBER" "${names[@]}" >/dev/null
  cmd_net
  start_prober
  for entry in "${SERVERS[@]}"; do
    read -r name image n <<<"$entry"
    start_server "$name" "$image" "$n" &
    pids+=($!)
  done
  wait_all "${pids[@]}" || die "could not start the zoo"
  # (90 s: on a loaded 2-core machine Sendmail alone took over 30 s to build its maps and greet)
  wait_ready 90 || die "zoo servers not answering"
  log "zoo up in $(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"
}

cmd_down() {
  need_root
  local -a names
  mapfile -t names < <(server_names)
  podman rm -f -t 0 --ignore "$PROBER" "${names[@]}" >/dev/null
  if podman network exists "$NET"; then
    podman network rm "$NET" >/dev/null
    log "removed network $NET"
  fi
  log "removed containers: $PROBER ${names[*]}"
}

cmd_status() {
  local -a names
  mapfile -t names < <(server_names)
  echo "containers:"
  podman ps -a --filter label=io.mailsec.zoo=1 --format '  {{.Names}} {{.Status}}' | grep -E " " || echo "  (none)"
  echo "network:"
  podman network exists "$NET" && echo "  $NET" || echo "  (none)"
}

cmd_servers() {
  local entry
  for entry in "${SERVERS[@]}"; do echo "$entry"; done
}

usage() { sed -n '9,14p' "$0" | sed 's/^# \{0,1\}//'; }

# Changes take a lock of their own (not the demo lab's): two `up`s at once would remove each
# other's containers halfway.
LOCK_FILE=/run/lock/mailsec-zoo.lock
take_lock() {
  [[ -n ${MAILSEC_ZOO_LOCKED:-} ]] && return
  export MAILSEC_ZOO_LOCKED=1
  exec flock -w 600 -E 75 "$LOCK_FILE" "$0" "$@"
}

main() {
  local cmd=${1:-}
  case $cmd in
    images | up | down) take_lock "$@" ;;
  esac
  shift || true
  case $cmd in
    images) cmd_images "$@" ;;
    up) cmd_up "$@" ;;
    down) cmd_down "$@" ;;
    status) cmd_status "$@" ;;
    servers) cmd_servers "$@" ;;
    -h | --help | help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
