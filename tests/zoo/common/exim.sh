# shellcheck shell=sh disable=SC2016  # $names in single quotes are Postfix/Exim syntax, not shell
# Sourced by tests/zoo/exim-*/setup.sh inside a zoo container (image mailsec-zoo-exim: Debian 12's
# exim4-daemon-light with exim4-config's split configuration).
#   zoo_debconf  - the debconf answers of exim4-config (README.Debian 2.1.1) for an Internet site
#                  on THIS host that receives mail from the network: listen on all interfaces
#                  (Debian's default is loopback only), the mail name and hosted domain.
#   zoo_plumbing - the zoo's containment, not a setting under test: mail for the canary domain is
#                  routed to the sink by /etc/exim4/hubbed_hosts (exim4-config_files(5)); every
#                  other foreign domain finds no DNS and stays queued; no reverse lookups of
#                  clients (host_lookup unset through exim4-config's MAIN_HOST_LOOKUP macro).
# Nothing here comes from mailsec.relay's roles or renderer.

zoo_debconf() {
  echo "$ZOO_DOMAIN" > /etc/mailname
  cat > /etc/exim4/update-exim4.conf.conf <<CONF
dc_eximconfig_configtype='internet'
dc_other_hostnames='${ZOO_OTHER_HOSTNAMES-$ZOO_DOMAIN}'
dc_local_interfaces=''
dc_readhost=''
dc_relay_domains='${ZOO_RELAY_DOMAINS-}'
dc_minimaldns='false'
dc_relay_nets=''
dc_smarthost=''
CFILEMODE='644'
dc_use_split_config='true'
dc_hide_mailname=''
dc_mailname_in_oh='true'
dc_localdelivery='mail_spool'
CONF
}

zoo_plumbing() {
  printf 'canary.test: %s\n' "$ZOO_SINK" > /etc/exim4/hubbed_hosts
  printf '# zoo plumbing: no reverse DNS of clients (there is no DNS in the zoo)\nMAIN_HOST_LOOKUP =\n' \
    >> /etc/exim4/conf.d/main/000_localmacros
}

# README.Debian 2.2.2 "TLS support for Exim as server": a certificate made by exim-gencert
# (/etc/exim4/exim.crt, exim.key) and the macro MAIN_TLS_ENABLE in a local macro file.
zoo_tls() {
  # exim-gencert asks for the certificate's fields (country, ..., Common Name): answered here,
  # the host name as CN as the script asks.
  printf '\n\n\n\n\n%s\n\n' "$ZOO_FQDN" | sh /usr/share/doc/exim4-base/examples/exim-gencert --force >/dev/null 2>&1
  [ -s /etc/exim4/exim.crt ]
  printf '# README.Debian 2.2.2: enable TLS with the exim-gencert certificate\nMAIN_TLS_ENABLE = yes\n' \
    >> /etc/exim4/conf.d/main/000_localmacros
}

# README.Debian 2.3.2 "Using Exim as SMTP-AUTH server" and the plain_server/login_server examples
# of conf.d/auth/30_exim4-config_examples, uncommented as they stand (advertised only after TLS),
# against CONFDIR/passwd in the format of exim4_passwd(5) (crypteq: a crypt(3) hash).
zoo_auth() {
  sed -i -e '/^# plain_server:/,/^#   \.endif/ s/^# \{0,1\}//' \
         -e '/^# login_server:/,/^#   \.endif/ s/^# \{0,1\}//' /etc/exim4/conf.d/auth/30_exim4-config_examples
  printf 'zoouser:%s\n' "$(openssl passwd -6 zoo-test-password-1)" > /etc/exim4/passwd
  chown root:Debian-exim /etc/exim4/passwd && chmod 0640 /etc/exim4/passwd
}

# README.Debian 2.2.2: to listen on more ports (here 587 for submission and 465 with TLS on
# connect), SMTPLISTENEROPTIONS='-oX 465:25:587 -oP /run/exim4/exim.pid' in /etc/default/exim4 and
# tls_on_connect_ports = 465 in the main configuration (a local file in conf.d/main).
zoo_submission_ports() {
  sed -i "s|^SMTPLISTENEROPTIONS=.*|SMTPLISTENEROPTIONS='-oX 465:25:587 -oP /run/exim4/exim.pid'|" /etc/default/exim4
  printf '# README.Debian 2.2.2: TLS on connect for port 465\ntls_on_connect_ports = 465\n' \
    > /etc/exim4/conf.d/main/04_zoo_tls_on_connect
}

zoo_exim_start() {
  update-exim4.conf
  exim4 -bV >/dev/null
  service exim4 start >/dev/null 2>&1
}
