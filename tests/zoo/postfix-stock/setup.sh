# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-stock: Debian 12's postfix 3.7.11 exactly as `apt-get install postfix` with debconf
# "Internet Site" leaves it. No setting of its own: only the debconf answers for this host and
# the zoo's plumbing (tests/zoo/common/postfix.sh).
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_postfix_start
