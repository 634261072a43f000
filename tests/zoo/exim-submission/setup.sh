# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# exim-submission: exim-stock plus TLS, SMTP AUTH and the submission ports exactly as Debian's
# exim4 README.Debian (2.2 "Using TLS", 2.3 "SMTP-AUTH") and conf.d/auth/30_exim4-config_examples
# describe them. Nothing beyond those documents.
. /zoo-common/exim.sh
zoo_debconf
zoo_plumbing
zoo_tls
zoo_auth
zoo_submission_ports
zoo_exim_start
