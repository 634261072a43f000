# shellcheck shell=sh disable=SC2016,SC1091  # Postfix/Exim $names stay literal; /zoo-common exists in the container
# sendmail: Debian 12's sendmail 8.17.1.9 (sendmail-bin/-cf) with Debian's sendmail.mc, changed only
# as Debian's own files and sendmail's cf/README (/usr/share/sendmail/cf/README) say:
#  - listen on every interface: the sendmail.mc comment "Remove `, Addr=' clauses to receive from
#    any interface" (25: MTA, 587: MSP with M=Ea, Debian's own submission entry; and the commented
#    IPv6 entries, with the host's IPv6 address: a wildcard inet6 socket is dual-stack on Linux and
#    the inet one then cannot bind, sendmail retries forever);
#  - STARTTLS: /usr/share/sendmail/update_tls, then its instruction "Add include(`/etc/mail/tls/
#    starttls.m4')dnl to /etc/mail/sendmail.mc";
#  - SMTP AUTH: /usr/share/sendmail/update_auth and include(`/etc/mail/sasl/sasl.m4')dnl the same
#    way; Cyrus SASL with the sasldb auxprop (saslpasswd2) for the test account;
#  - cf/README confAUTH_OPTIONS "p": no PLAIN/LOGIN without TLS; DaemonPortOptions modifier "A"
#    (no AUTH) on port 25, "a" (AUTH required) on 587 as Debian has it;
#  - hosted domain in /etc/mail/local-host-names (FEATURE(use_cw_file) in Debian's sendmail.mc).
# Zoo plumbing (not under test): SMART_HOST = the canary sink; confSERVICE_SWITCH_FILE = Debian's
# /etc/mail/service.switch-nodns (hosts from /etc/hosts, no DNS, also for client names).
set -e
mc=/etc/mail/sendmail.mc
echo "$ZOO_DOMAIN" > /etc/mailname
printf '%s\n%s\n' "$ZOO_DOMAIN" "$ZOO_FQDN" > /etc/mail/local-host-names
sed -i -e "s/^DAEMON_OPTIONS(\`Family=inet,  Name=MTA-v4, Port=smtp, Addr=127.0.0.1')dnl/DAEMON_OPTIONS(\`Family=inet,  Name=MTA-v4, Port=smtp, M=A')dnl/" \
       -e "s/^dnl DAEMON_OPTIONS(\`Family=inet6, Name=MTA-v6, Port=smtp, Addr=::1')dnl/DAEMON_OPTIONS(\`Family=inet6, Name=MTA-v6, Port=smtp, M=A, Addr=$ZOO_V6')dnl/" \
       -e "s/^DAEMON_OPTIONS(\`Family=inet,  Name=MSP-v4, Port=submission, M=Ea, Addr=127.0.0.1')dnl/DAEMON_OPTIONS(\`Family=inet,  Name=MSP-v4, Port=submission, M=Ea')dnl/" \
       -e "s/^dnl DAEMON_OPTIONS(\`Family=inet6, Name=MSP-v6, Port=submission, M=Ea, Addr=::1')dnl/DAEMON_OPTIONS(\`Family=inet6, Name=MSP-v6, Port=submission, M=Ea, Addr=$ZOO_V6')dnl/" \
       "$mc"
grep -q "Name=MTA-v4, Port=smtp, M=A'" "$mc"
/usr/share/sendmail/update_tls >/dev/null 2>&1
/usr/share/sendmail/update_auth >/dev/null 2>&1
# Cyrus SASL for sendmail: the sasldb auxprop instead of Debian's default saslauthd (system users).
mkdir -p /etc/sasl2
printf 'pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n' > /etc/sasl2/Sendmail.conf
echo zoo-test-password-1 | saslpasswd2 -p -c -u "$ZOO_FQDN" zoouser
chown root:smmsp /etc/sasldb2 && chmod 0640 /etc/sasldb2
sed -i "/^MAILER_DEFINITIONS/i\\
include(\`/etc/mail/tls/starttls.m4')dnl\\
include(\`/etc/mail/sasl/sasl.m4')dnl\\
define(\`confAUTH_OPTIONS', \`A p')dnl\\
define(\`SMART_HOST', \`[$ZOO_SINK]')dnl\\
define(\`confSERVICE_SWITCH_FILE', \`/etc/mail/service.switch-nodns')dnl" "$mc"
make -C /etc/mail >/dev/null 2>&1 || make -C /etc/mail
# RFC 5321 4.5.1 (postmaster must exist) / aliases(5): Debian's sendmail leaves /etc/aliases empty.
grep -q '^postmaster:' /etc/aliases || echo 'postmaster: root' >> /etc/aliases
newaliases >/dev/null
/usr/sbin/sendmail -bd -q15m
