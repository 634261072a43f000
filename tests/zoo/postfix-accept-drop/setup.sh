# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-accept-drop (insecure on purpose): a "catch everything" host that takes every
# recipient and throws non-local mail away: check_recipient_access static:OK in
# smtpd_relay_restrictions (access(5) OK, postconf(5) static: tables) and the default and relay
# transports set to discard(8).
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -e 'smtpd_relay_restrictions = permit_mynetworks, check_recipient_access static:OK, reject_unauth_destination' \
  'default_transport = discard:accept-then-drop' 'relay_transport = discard:accept-then-drop'
zoo_postfix_start
