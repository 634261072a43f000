# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-auth-before-tls (insecure on purpose): the SASL_README submission service, but with TLS
# made optional on 587 and AUTH allowed before it (smtpd_tls_security_level=may,
# smtpd_tls_auth_only=no): the shape SASL_README's pre-TLS examples show.
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_dovecot_sasl
zoo_submission
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -P 'submission/inet/smtpd_tls_security_level=may' 'submission/inet/smtpd_tls_auth_only=no'
zoo_postfix_start
