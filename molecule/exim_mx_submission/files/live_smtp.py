#!/usr/bin/python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A few live SMTP facts about one Exim host, as JSON, for the scenario's own assertions.

Runs on the prober (which binds the vantage addresses). Independent of mailsec.relay.verify on
purpose: the scenario proves TLS, AUTH and relaying even without the verifier. Lab-only: talks
only to the MTA address given and sends DATA only to the canary domain.
"""

import json
import smtplib
import ssl
import sys

host, profile, user, password = sys.argv[1:5]
CANARY = "exim-scenario@canary.test"
TLS = ssl._create_unverified_context()  # self-signed lab certificate
facts = {}


def session(port, source, implicit=False):
    cls = smtplib.SMTP_SSL if implicit else smtplib.SMTP
    kwargs = {"context": TLS} if implicit else {}
    conn = cls(host, port, source_address=(source, 0), timeout=10, **kwargs)
    conn.ehlo("prober.mailsec.test")
    return conn


def rcpt(conn, recipient=CANARY, sender="probe@example.com"):
    code, _ = conn.mail(sender)
    if code >= 400:
        return code
    return conn.rcpt(recipient)[0]


with session(25, "203.0.113.110") as c:
    facts["25_ehlo_auth"] = c.has_extn("auth")
    facts["25_ehlo_starttls"] = c.has_extn("starttls")
    facts["25_external_foreign"] = rcpt(c)
with session(25, "203.0.113.110") as c:
    facts["25_external_local"] = rcpt(c, "postmaster@example.test")
with session(25, "203.0.113.60") as c:
    facts["25_trusted_foreign"] = rcpt(c)
    if facts["25_trusted_foreign"] == 250:
        facts["25_trusted_data"] = c.data(b"Subject: exim scenario relay\r\n\r\ntrusted relay\r\n")[0]
with session(25, "203.0.113.61") as c:
    facts["25_never_foreign"] = rcpt(c)
if profile != "mx_submission":
    print(json.dumps(facts, sort_keys=True))
    sys.exit(0)
with session(587, "203.0.113.110") as c:
    facts["587_plain_auth"] = c.has_extn("auth")
    facts["587_plain_mail"] = c.mail("alice@example.test")[0]
with session(587, "203.0.113.110") as c:
    c.starttls(context=TLS)
    c.ehlo("prober.mailsec.test")
    facts["587_tls_auth"] = c.esmtp_features.get("auth", "")
    try:
        facts["587_wrong_password"] = c.login(user, password + "-wrong")[0]
    except smtplib.SMTPAuthenticationError as exc:
        facts["587_wrong_password"] = exc.smtp_code
    facts["587_login"] = c.login(user, password)[0]
    facts["587_auth_foreign"] = rcpt(c, sender=user)
for source in ("203.0.113.110", "203.0.113.61"):
    with session(465, source, implicit=True) as c:
        c.login(user, password)
        facts["465_auth_foreign_from_%s" % source] = rcpt(c, sender=user)
print(json.dumps(facts, sort_keys=True))
