#!/usr/bin/python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Scenario cases from the prober, as JSON on stdin: {host, cases: [{id, rcpt, data?}]}.

Each case: greeting (postscreen may hold it for its pregreet test: the timeout allows for that),
EHLO, MAIL, RCPT; DATA only for cases with ``data`` (the scenario's virtual mailbox, or the canary
domain). Prints one JSON list: per case the RCPT code and text, and the end-of-data code."""

import json
import smtplib
import sys

spec = json.load(sys.stdin)
out = []
for case in spec["cases"]:
    result = {"id": case["id"]}
    try:
        with smtplib.SMTP(spec["host"], 25, local_hostname="prober.mailsec.test", timeout=20) as client:
            client.ehlo()
            code, text = client.mail("probe@prober.mailsec.test")
            result["mail"] = code
            code, text = client.rcpt(case["rcpt"])
            result["rcpt"], result["rcpt_text"] = code, text.decode("utf-8", "replace")
            if case.get("data") and code == 250:
                body = "Subject: brownfield %s\r\nX-Token: %s\r\n\r\nlab message\r\n" % (case["id"], case["data"])
                code, text = client.data(body.encode())
                result["data"] = code
    except (OSError, smtplib.SMTPException) as exc:
        result["error"] = str(exc)
    out.append(result)
print(json.dumps(out))
