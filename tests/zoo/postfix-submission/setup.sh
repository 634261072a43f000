# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-submission: Debian's Postfix plus submission (587, STARTTLS) and submissions (465,
# implicit TLS) exactly as Postfix's SASL_README and TLS_README describe them, with Dovecot SASL.
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_dovecot_sasl
# SASL_README/TLS_README submission (587) and submissions (465): tests/zoo/common/postfix.sh
zoo_submission
# Postfix smtp-smuggling.html long-term fix (bare newlines refused): tests/zoo/common/postfix.sh
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
zoo_postfix_start
