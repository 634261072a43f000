# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-auth-on-25 (insecure on purpose): SASL enabled in main.cf, as SASL_README's "Enabling
# SASL authentication in the Postfix SMTP server" shows it (smtpd_sasl_auth_enable = yes in
# main.cf), which turns AUTH on for every smtpd including port 25; smtpd_tls_auth_only = yes
# (SASL_README, "Postfix SMTP server policy") keeps it behind STARTTLS.
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_dovecot_sasl
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -e 'smtpd_sasl_auth_enable = yes' 'smtpd_tls_auth_only = yes'
zoo_postfix_start
