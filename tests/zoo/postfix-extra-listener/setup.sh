# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-extra-listener (insecure on purpose): port 25 is stock, but a second smtpd on 2525 ("for
# clients whose ISP blocks 25") was added with a master.cf -o override of mynetworks that trusts
# everyone (master(5): -o overrides main.cf per service; postconf(5) mynetworks).
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -M 2525/inet='2525 inet n - y - - smtpd'
postconf -P '2525/inet/syslog_name=postfix/alt' '2525/inet/mynetworks=0.0.0.0/0,[::]/0'
zoo_postfix_start
