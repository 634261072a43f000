# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-postscreen: Debian's Postfix fronted by postscreen(8) as POSTSCREEN_README describes it,
# with the pregreet test enforced: postscreen sends "220-<banner>" and waits
# postscreen_greet_wait (6 s when not under stress) before smtpd sends the final "220 ".
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
# POSTSCREEN_README "Configuring the postscreen(8) service": port 25 goes to postscreen, which
# hands passed clients to smtpd over a pass socket; dnsblog and tlsproxy beside it.
postconf -M smtp/inet='smtp inet n - y - 1 postscreen'
postconf -M smtpd/pass='smtpd pass - - y - - smtpd'
postconf -M dnsblog/unix='dnsblog unix - - y - 0 dnsblog'
postconf -M tlsproxy/unix='tlsproxy unix - - y - 0 tlsproxy'
# POSTSCREEN_README "Pregreet test": postscreen_greet_action = enforce (default: ignore). The
# multi-line teaser is postscreen_greet_banner (default $smtpd_banner). No DNSBL sites (no DNS here).
postconf -e 'postscreen_greet_action = enforce'
# Postfix smtp-smuggling.html long-term fix: tests/zoo/common/postfix.sh
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
zoo_postfix_start
