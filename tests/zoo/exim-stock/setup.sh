# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# exim-stock: Debian 12's default MTA (exim4-daemon-light 4.96) with exim4-config's split
# configuration, answered "internet site; mail is sent and received directly using SMTP" and
# listening on all interfaces. No setting of its own beyond the debconf answers and the plumbing.
. /zoo-common/exim.sh
zoo_debconf
zoo_plumbing
zoo_exim_start
