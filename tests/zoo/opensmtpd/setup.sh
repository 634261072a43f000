# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# opensmtpd: Debian 12's OpenSMTPD 6.8.0p2 with smtpd.conf from this directory (Debian's file plus
# the changes its comments and smtpd.conf(5) give for a receiving MX with submission).
echo "$ZOO_DOMAIN" > /etc/mailname
sed -e "s/@FQDN@/$ZOO_FQDN/g" -e "s/@DOMAIN@/$ZOO_DOMAIN/g" -e "s/@SINK@/$ZOO_SINK/g" \
  /zoo-server/smtpd.conf.in > /etc/smtpd.conf
mkdir -p /etc/smtpd
# table(5): "user hash" lines; smtpctl encrypt makes the crypt(3) hash.
printf 'zoouser %s\n' "$(smtpctl encrypt zoo-test-password-1)" > /etc/smtpd/creds
chmod 0640 /etc/smtpd/creds && chown root:opensmtpd /etc/smtpd/creds
smtpd -n -f /etc/smtpd.conf
smtpd -f /etc/smtpd.conf
