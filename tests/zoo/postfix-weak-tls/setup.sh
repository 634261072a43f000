# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-weak-tls (insecure on purpose): the SASL_README/TLS_README submission service with the
# old protocols re-enabled "for old clients": TLS_README "Server-side TLS activity" /
# postconf(5) smtpd_tls_protocols and smtpd_tls_mandatory_protocols (>=TLSv1), and OpenSSL 3's
# security level 0 in the cipher list (postconf(5) tls_medium_cipherlist; OpenSSL 3 refuses
# TLS 1.0/1.1 at its default level 1).
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_dovecot_sasl
zoo_submission
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -e 'smtpd_tls_protocols = >=TLSv1' 'smtpd_tls_mandatory_protocols = >=TLSv1' \
  'tls_medium_cipherlist = DEFAULT:@SECLEVEL=0' 'smtpd_tls_mandatory_ciphers = medium'
zoo_postfix_start
