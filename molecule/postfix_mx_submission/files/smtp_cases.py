#!/usr/bin/python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run SMTP cases against one MTA from the prober and print what happened, as JSON.

The Postfix scenarios' own live check, independent of mailsec.relay.verify on purpose. Reads the
cases (and the SASL password) as JSON on stdin so no secret is on a command line; stops at RCPT,
never sends DATA, and talks only to the MTA address given.
Case: {id, port, source, tls: none|starttls|implicit, auth: bool, rcpt}.
Result: {id, ehlo_auth, ehlo_starttls, auth, rcpt} (SMTP codes; 0 = step not reached).
"""

import json
import smtplib
import ssl
import sys

spec = json.load(sys.stdin)
host, user, password = spec["host"], spec.get("user"), spec.get("password")
TLS = ssl._create_unverified_context()  # self-signed lab certificate


def run(case):
    res = {"id": case["id"], "ehlo_auth": None, "ehlo_starttls": None, "auth": 0, "rcpt": 0}
    cls = smtplib.SMTP_SSL if case.get("tls") == "implicit" else smtplib.SMTP
    kwargs = {"context": TLS} if case.get("tls") == "implicit" else {}
    try:
        conn = cls(host, case["port"], source_address=(case["source"], 0), timeout=10, **kwargs)
    except (OSError, smtplib.SMTPException) as exc:
        res["error"] = "connect: %s" % exc.__class__.__name__
        return res
    with conn:
        conn.ehlo("prober.mailsec.test")
        res["ehlo_auth"] = conn.has_extn("auth")
        res["ehlo_starttls"] = conn.has_extn("starttls")
        if case.get("tls") == "starttls":
            conn.starttls(context=TLS)
            conn.ehlo("prober.mailsec.test")
            res["ehlo_auth"] = conn.has_extn("auth")
        if case.get("auth"):
            try:
                res["auth"] = conn.login(user, password)[0]
            except smtplib.SMTPAuthenticationError as exc:
                res["auth"] = exc.smtp_code
            except smtplib.SMTPNotSupportedError:
                res["auth"] = -1
        # After AUTH the login's own address: the scenario enforces sender identity (issue 14).
        code, text = conn.mail(user if case.get("auth") else "probe@example.com")
        if code < 400:
            res["rcpt"] = conn.rcpt(case["rcpt"])[0]
        else:
            res["mail"] = code
            res["mail_text"] = text.decode("utf-8", "replace")
        conn.rset()
    return res


print(json.dumps([run(c) for c in spec["cases"]]))
