# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-inbound-broken (broken on purpose): the hosted domain was dropped from mydestination
# (postconf(5) mydestination: "the list of domains that are delivered via the local transport")
# while its MX still points here: mail for it is refused as relaying.
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -e 'mydestination = $myhostname, localhost.localdomain, localhost'
zoo_postfix_start
