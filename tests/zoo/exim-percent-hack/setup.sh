# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# exim-percent-hack (insecure on purpose): a backup MX for relay.test (debconf "Domains to relay
# mail for", README.Debian 2.1.1.5) whose banner name (backup-mx.other.test) lies outside that
# domain, with the percent hack switched on for the relay domains as the commented
# percent_hack_domains entry of conf.d/main/02_exim4-config_options offers, and the "%" taken
# out of CHECK_RCPT_REMOTE_LOCALPARTS (the macro's documented override, conf.d/acl/
# 30_exim4-config_check_rcpt) so such addresses are not refused first.
export ZOO_RELAY_DOMAINS=relay.test  # read by zoo_debconf (dc_relay_domains)
. /zoo-common/exim.sh
zoo_debconf
zoo_plumbing
cat >> /etc/exim4/conf.d/main/000_localmacros <<'MACROS'
# spec.txt "percent_hack_domains"; exim4-config: CHECK_RCPT_REMOTE_LOCALPARTS without "%"
CHECK_RCPT_REMOTE_LOCALPARTS = ^[./|] : ^.*[@!`#&?] : ^.*/\\.\\./
MAIN_HARDCODE_PRIMARY_HOSTNAME = backup-mx.other.test
MACROS
printf '# 02_exim4-config_options: percent hack for the relay domains\npercent_hack_domains = +relay_to_domains\n' \
  > /etc/exim4/conf.d/main/04_zoo_percent_hack
# The relay domain's primary MX is the sink (exim4-config_files(5) hubbed_hosts).
printf 'relay.test: %s\n' "$ZOO_SINK" >> /etc/exim4/hubbed_hosts
zoo_exim_start
