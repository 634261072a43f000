# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""relay_probe's arguments, decided once: the module validates them with AnsibleModule, and the
action plugin with ArgumentSpecValidator when it runs the engine in the controller's process.
Pure data and one helper, no Ansible imports."""

from __future__ import annotations

_LISTENER = dict(
    port=dict(type="int", required=True),
    role=dict(type="str", choices=["mx", "submission"], default="mx"),
    tls=dict(type="str", choices=["none", "starttls", "required", "implicit"], default="none"),
    relay=dict(type="str", choices=["refused", "allowed"], default="refused"),
    auth_relay=dict(type="bool"),
    sender_login_match=dict(type="bool", default=False),
    reachable=dict(type="bool", default=True),
)
_TARGET = dict(
    name=dict(type="str", required=True),
    addresses=dict(type="list", elements="str", required=True),
    hostname=dict(type="str"),
    local_domains=dict(type="list", elements="str", default=[]),
    relay_domains=dict(type="list", elements="str", default=[]),
    test_mailbox=dict(type="str"),
    extra_ports=dict(type="list", elements="int", default=[]),
    refused_recipients=dict(
        type="list",
        elements="dict",
        default=[],
        options=dict(address=dict(type="str", required=True), kind=dict(type="str", required=True, choices=["unknown", "blocked"])),
    ),
    listeners=dict(type="list", elements="dict", required=True, options=_LISTENER),
    auth=dict(type="dict", options=dict(username=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True))),
    sender_rate_limit=dict(
        type="dict",
        options=dict(
            limit=dict(type="int", required=True),
            ceiling=dict(type="int", default=100),
            username=dict(type="str"),
            password=dict(type="str", no_log=True),
            skip=dict(type="str"),
        ),
    ),
    auth_attempt_limit=dict(type="dict", options=dict(limit=dict(type="int", required=True), ceiling=dict(type="int", default=100), skip=dict(type="str"))),
)

ARGUMENT_SPEC = dict(
    targets=dict(type="list", elements="dict", required=True, options=_TARGET),
    source_address=dict(type="list", elements="str"),
    vantage=dict(type="str"),
    ehlo_name=dict(type="str", default="prober.mailsec.test"),
    canary=dict(type="dict", options=dict(domain=dict(type="str", required=True), spool=dict(type="path"), wait=dict(type="float", default=10))),
    extra_forms=dict(
        type="list", elements="dict", options=dict(sender=dict(type="str", required=True), rcpt=dict(type="str", required=True), name=dict(type="str"))
    ),
    probes=dict(type="list", elements="str", default=["all"]),
    concurrency=dict(type="int", default=64),
    per_host=dict(type="int", default=10),
    max_connections_per_host=dict(type="int", default=0),
    timeout=dict(type="float", default=5),
    connect_timeout=dict(type="float", default=10),
    greeting_timeout=dict(type="float"),
    tls_min_version=dict(type="str", choices=["TLSv1.0", "TLSv1.1", "TLSv1.2", "TLSv1.3"], default="TLSv1.2"),
    unverified=dict(type="str", choices=["fail", "warn"], default="fail"),
    results=dict(type="str", choices=["compact", "full"], default="compact"),
    retries=dict(type="int", default=1),
    retry_delay=dict(type="float", default=2),
    error_budget=dict(type="int", default=8),
    tls_verify=dict(type="bool", default=False),
    transcripts=dict(type="str", choices=["failures", "all", "none"], default="failures"),
    workers=dict(type="int", default=0),
)


def engine_params(params):
    """Validated arguments -> the engine's parameters (a copy; ``params`` is left as it is)."""
    params = dict(params)
    params["targets"] = [dict(spec, listeners=[dict(item) for item in spec["listeners"]]) for spec in params["targets"]]
    # auth_relay unset means "the role's default" (submission: true); the engine decides.
    for spec in params["targets"]:
        for item in spec["listeners"]:
            if item.get("auth_relay") is None:
                item.pop("auth_relay", None)
    return params
