# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-sender-trick (insecure on purpose): "let our own users relay" by envelope sender, the
# mistake SMTPD_ACCESS_README warns about ("sender addresses are easy to forge"):
# check_sender_access with OK for the hosted domain, placed before reject_unauth_destination in
# smtpd_relay_restrictions (postconf(5) smtpd_relay_restrictions, access(5) "OK").
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
printf '%s OK\n' "$ZOO_DOMAIN" > /etc/postfix/sender_access
postmap /etc/postfix/sender_access
postconf -e 'smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, check_sender_access hash:/etc/postfix/sender_access, defer_unauth_destination'
zoo_postfix_start
