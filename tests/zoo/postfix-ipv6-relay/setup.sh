# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-ipv6-relay (insecure on purpose): IPv4 mynetworks is right, but the IPv6 entry is the
# whole on-link /64 (postconf(5) mynetworks: IPv6 networks in [brackets]).
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -e "mynetworks = 127.0.0.0/8 [::1]/128 [${ZOO_NET_V6%/*}]/${ZOO_NET_V6#*/}"
zoo_postfix_start
