#!/usr/bin/python3
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stolen submission login, live (issue 14): run from the prober, print what happened as JSON.

Reads its settings and the test passwords as JSON on stdin (no secret on a command line). First
one session in plain smtplib: the stolen login tries another local user's address as sender
(MAIL only, no DATA). Then the collection's own probe engine (copied next to this script) runs
T10 (sender identity), T24 (limit + 1 messages to the canary under the stolen login) and T25
(AUTH attempts from one client beyond its limit: one wrong password, then cancelled exchanges).
Every connection goes to the MTA address given, from the source address given; DATA only to
the canary domain; credentials only after TLS.
"""

import asyncio
import json
import smtplib
import ssl
import sys

spec = json.load(sys.stdin)
sys.path.insert(0, spec["engine_path"])
from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine  # noqa: E402

TLS = ssl._create_unverified_context()  # self-signed lab certificate
stolen, victim = spec["stolen"], spec["victim"]


def as_another_user():
    with smtplib.SMTP(spec["host"], 587, source_address=(spec["source"], 0), timeout=10) as conn:
        conn.ehlo("prober.mailsec.test")
        conn.starttls(context=TLS)
        conn.ehlo("prober.mailsec.test")
        auth = conn.login(stolen["name"], stolen["password"])[0]
        other = conn.mail(victim)
        conn.rset()
        own = conn.mail(stolen["name"])
        conn.rset()
    return {"auth": auth, "as_victim": other[0], "as_victim_text": other[1].decode("utf-8", "replace"), "as_self": own[0]}


options = {
    "targets": [
        {
            "name": "mta",
            "addresses": [spec["host"]],
            "hostname": spec["hostname"],
            "local_domains": spec["local_domains"],
            "auth": {"username": stolen["name"], "password": stolen["password"]},
            "listeners": [
                {"port": 587, "role": "submission", "tls": "required", "relay": "refused", "auth_relay": True, "sender_login_match": True},
            ],
            "sender_rate_limit": {"limit": int(spec["messages"]), "ceiling": int(spec["ceiling"]), "username": stolen["name"], "password": stolen["password"]},
            "auth_attempt_limit": {"limit": int(spec["auth_attempts"]), "ceiling": int(spec["ceiling"])},
        }
    ],
    "source_address": spec["source"],
    "canary": spec["canary"],
    "probes": ["T10", "T24", "T25"],
    "transcripts": "failures",
}
facts = {"identity": as_another_user()}
outcome = asyncio.run(engine.run_async(options))
facts["probes"] = dict(
    (r["probe"], {"verdict": r["verdict"], "reason": r["reason"], "finding": r.get("finding")})
    for r in outcome["results"]
    if r["probe"] in ("T10", "T24", "T25")
)
print(json.dumps(facts))
