# shellcheck shell=sh disable=SC2016  # $names in single quotes are Postfix/Exim syntax, not shell
# Sourced by tests/zoo/postfix-*/setup.sh inside a zoo container (image mailsec-zoo-postfix).
# Two kinds of settings live here, kept apart on purpose:
#   zoo_debconf  - what Debian's postfix package writes for "Internet Site" on THIS host
#                  (postinst: myhostname = the FQDN, mydestination = $myhostname, <mailname>,
#                  localhost...); the image was installed under another name.
#   zoo_plumbing - the zoo's containment, not a security setting under test: non-local mail
#                  goes to the canary sink, no DNS/peer-name lookups, a log file (no syslog).
# Nothing here comes from mailsec.relay's roles or renderer.

zoo_debconf() {
  echo "$ZOO_DOMAIN" > /etc/mailname
  postconf -e "myhostname = $ZOO_FQDN" \
    'mydestination = $myhostname, '"$ZOO_DOMAIN"', localhost, localhost.localdomain, localhost'
}

zoo_plumbing() {
  # postconf(5) relayhost: every non-local message goes to the zoo's canary sink, never off the machine.
  # postconf(5) smtpd_peername_lookup = no: no reverse DNS of clients (there is no DNS in the zoo).
  postconf -e "relayhost = [$ZOO_SINK]:25" \
    'smtpd_peername_lookup = no' \
    'smtp_host_lookup = native' \
    'maillog_file = /var/log/mail.log'
  newaliases
}

# SASL_README "Dovecot SASL" (Postfix side) and the Dovecot side as the same section shows it:
# auth socket in Postfix's queue directory, mechanisms plain and login; the test account in a
# passwd-file (Dovecot's auth-passwdfile.conf.ext) instead of system users (auth-system.conf.ext).
zoo_dovecot_sasl() {
  sed -i 's/^!include auth-system.conf.ext/#!include auth-system.conf.ext/' /etc/dovecot/conf.d/10-auth.conf
  cat > /etc/dovecot/local.conf <<'DOVECOT'
# SASL_README, "Dovecot SASL", Dovecot configuration: the auth service's socket for Postfix.
protocols =
auth_mechanisms = plain login
service auth {
  unix_listener /var/spool/postfix/private/auth {
    mode = 0660
    user = postfix
    group = postfix
  }
}
# auth-passwdfile.conf.ext: the zoo's test account (tests/zoo/common/users).
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u /etc/dovecot/zoo-users
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/nonexistent
}
log_path = /var/log/dovecot.log
DOVECOT
  cp /zoo-common/users /etc/dovecot/zoo-users
  chmod 0640 /etc/dovecot/zoo-users && chown root:dovecot /etc/dovecot/zoo-users
  # SASL_README "Enabling SASL authentication in the Postfix SMTP server" (Dovecot):
  postconf -e 'smtpd_sasl_type = dovecot' 'smtpd_sasl_path = private/auth'
  dovecot
}

zoo_submission() {
  # TLS_README "Server-side TLS activity": Debian already sets smtpd_tls_cert_file/key_file to the
  # snakeoil pair and smtpd_tls_security_level = may (opportunistic STARTTLS on port 25).
  # SASL_README "Enabling SASL authentication in the Postfix SMTP server" and Debian's master.cf
  # submission/submissions entries (uncommented), TLS_README "Server-side TLS activity":
  #   587: smtpd_tls_security_level=encrypt (TLS before anything), AUTH only after TLS;
  #   465: smtpd_tls_wrappermode=yes (implicit TLS, RFC 8314);
  #   SASL_README "Postfix SMTP server policy: permit_sasl_authenticated, reject" on both.
  postconf -M submission/inet='submission inet n - y - - smtpd'
  postconf -P 'submission/inet/syslog_name=postfix/submission' \
    'submission/inet/smtpd_tls_security_level=encrypt' \
    'submission/inet/smtpd_sasl_auth_enable=yes' \
    'submission/inet/smtpd_tls_auth_only=yes' \
    'submission/inet/smtpd_reject_unlisted_recipient=no' \
    'submission/inet/smtpd_relay_restrictions=permit_sasl_authenticated,reject' \
    'submission/inet/milter_macro_daemon_name=ORIGINATING'
  postconf -M submissions/inet='submissions inet n - y - - smtpd'
  postconf -P 'submissions/inet/syslog_name=postfix/submissions' \
    'submissions/inet/smtpd_tls_wrappermode=yes' \
    'submissions/inet/smtpd_sasl_auth_enable=yes' \
    'submissions/inet/smtpd_reject_unlisted_recipient=no' \
    'submissions/inet/smtpd_relay_restrictions=permit_sasl_authenticated,reject' \
    'submissions/inet/milter_macro_daemon_name=ORIGINATING'
}

zoo_smuggling_fix() {
  # www.postfix.org/smtp-smuggling.html, "Long-term solution" for Postfix 3.7.10 and later:
  # smtpd_forbid_bare_newline = yes (Postfix 3.9's "normalize" is not in 3.7), with the page's
  # exclusion for $mynetworks.
  postconf -e 'smtpd_forbid_bare_newline = yes' 'smtpd_forbid_bare_newline_exclusions = $mynetworks'
}

zoo_tls_floor() {
  # TLS as postconf(5) and RFC 8996/8314 want it for these servers.
  # postconf(5) smtpd_tls_protocols / smtpd_tls_mandatory_protocols (">=TLSv1.2" syntax) and RFC 8996
  # (TLS 1.0 and 1.1 deprecated): Postfix 3.7's default ">=TLSv1" with Debian's OpenSSL 3.0 still
  # completes TLS 1.0 and 1.1 handshakes (checked with tests/zoo/handcheck.py --tls-version 1.0).
  postconf -e 'smtpd_tls_protocols = >=TLSv1.2' 'smtpd_tls_mandatory_protocols = >=TLSv1.2'
  # postconf(5) smtpd_tls_exclude_ciphers / smtpd_tls_mandatory_exclude_ciphers ("aNULL" as in
  # their examples): Postfix's server offers anonymous suites by default (ADH-AES256-GCM-SHA384
  # was accepted on 25, 587 and 465; openssl s_client -cipher aNULL:@SECLEVEL=0), RFC 8314 wants
  # authenticated TLS on submission.
  postconf -e 'smtpd_tls_exclude_ciphers = aNULL' 'smtpd_tls_mandatory_exclude_ciphers = aNULL'
}

zoo_postfix_start() {
  postfix check
  postfix start >/dev/null 2>&1
}
