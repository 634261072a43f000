# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# postfix-broad-mynetworks (insecure on purpose): mynetworks lists the whole zoo subnet, "our
# office LAN", which holds the prober. postconf(5) mynetworks: "Specify a list of network
# addresses ... the SMTP server relays mail from these clients"; the documentation warns to list
# only trusted networks.
. /zoo-common/postfix.sh
zoo_debconf
zoo_plumbing
zoo_smuggling_fix
# TLS 1.2 or newer (postconf(5), RFC 8996): tests/zoo/common/postfix.sh
zoo_tls_floor
postconf -e "mynetworks = 127.0.0.0/8 [::1]/128 $ZOO_NET_V4"
zoo_postfix_start
