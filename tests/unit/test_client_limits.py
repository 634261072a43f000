# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Per-client brakes (issue 14): connection count/rate and AUTH rate, policy to rendering to readback."""

from __future__ import annotations

import os
import sys

import pytest

try:
    from ansible_collections.mailsec.relay.plugins.module_utils import policy
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", ".cache", "collections"))
    from ansible_collections.mailsec.relay.plugins.module_utils import policy

from ansible_collections.mailsec.relay.plugins.module_utils import drift, exim, postfix  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import exim_readback as er  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr  # noqa: E402

pytest.importorskip("netaddr")
HOST = "mx1.example.test"
BASE = {"mailsec_relay_profile": "mx_submission", "mailsec_relay_tls_selfsigned": True}


def build(**extra):
    return policy.build_policy(dict(BASE, **extra), HOST)


def test_defaults():
    assert build()["client_limits"] == {"connection_count": 50, "connection_rate": 0, "auth_rate": 30}


def test_values_and_digit_strings():
    limits = build(mailsec_relay_client_connection_count_limit="10", mailsec_relay_client_connection_rate_limit=120, mailsec_relay_client_auth_rate_limit=0)[
        "client_limits"
    ]
    assert limits == {"connection_count": 10, "connection_rate": 120, "auth_rate": 0}


@pytest.mark.parametrize("variable", sorted(policy.CLIENT_LIMITS))
@pytest.mark.parametrize("value", [-1, True, "ten", 1.5, [3], 10**6])
def test_bad_values_name_the_variable(variable, value):
    with pytest.raises(policy.PolicyErrors) as caught:
        build(**{variable: value})
    errors = list(caught.value)
    assert [e.variable for e in errors] == [variable]
    assert "whole number" in errors[0].message and "0 switches this limit off" in errors[0].fix


def test_postfix_settings():
    main = postfix.render_postfix(build(mailsec_relay_client_connection_rate_limit=60))["main"]
    assert main["anvil_rate_time_unit"] == "60s"
    assert main["smtpd_client_connection_count_limit"] == "50"
    assert main["smtpd_client_connection_rate_limit"] == "60"
    assert main["smtpd_client_auth_rate_limit"] == "30"


def test_exim_settings_and_acls():
    effective = build(mailsec_relay_client_connection_rate_limit=60, mailsec_relay_client_auth_rate_limit=5)
    main = exim.render_main(effective)
    assert "smtp_accept_max_per_host = ${if match_ip{$sender_host_address}{+relay_from_hosts}{0}{50}}\n" in main
    assert "acl_smtp_auth = acl_mailsec_auth\n" in main
    acl = exim.render_acl(effective)
    connect = acl.split("acl_mailsec_connect:", 1)[1].split("\n\n", 1)[0]
    assert "ratelimit = 60 / 1m / per_conn / strict / mailsec_conn:$sender_host_address" in connect
    auth = acl.split("acl_mailsec_auth:", 1)[1].split("\n\n", 1)[0]
    assert "  defer   !hosts = +relay_from_hosts\n          ratelimit = 5 / 1m / per_cmd / strict / mailsec_auth:$sender_host_address" in auth
    assert "454 4.7.0" in auth


def test_exim_limits_off():
    effective = build(mailsec_relay_client_connection_count_limit=0, mailsec_relay_client_auth_rate_limit=0)
    assert "smtp_accept_max_per_host" not in exim.render_main(effective)
    assert "acl_smtp_auth" not in exim.render_main(effective)
    acl = exim.render_acl(effective)
    assert "ratelimit" not in acl and "acl_mailsec_auth" not in acl


def test_postfix_readback_and_drift():
    main = {"smtpd_client_connection_count_limit": "50", "smtpd_client_connection_rate_limit": "0", "smtpd_client_auth_rate_limit": "0"}
    have = pr.client_limits(main)
    assert have == {"connection_count": 50, "connection_rate": 0, "auth_rate": 0}
    fails = [f for f in drift.compare_client_limits(build(), {"client_limits": have}, HOST) if f["verdict"] == "FAIL"]
    assert [(f["check"], f["detail"]) for f in fails] == [("client_limits auth_rate", "client limit auth_rate from 30 to 0 (off)")]
    assert pr.client_limits({}) == {}
    assert er.client_limits({}) == {}


@pytest.mark.parametrize(
    "value, expected",
    [
        ("${if match_ip{$sender_host_address}{+relay_from_hosts}{0}{50}}", {"connection_count": 50}),
        ("20", {"connection_count": 20}),
        ("", {"connection_count": 0}),
        ("${if eq{1}{1}{7}{8}}", {}),
    ],
)
def test_exim_readback_connection_count(value, expected):
    assert er.client_limits({"smtp_accept_max_per_host": value}) == expected


def test_dovecot_role_keeps_the_auth_penalty():
    root = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "dovecot")
    for folder, unused, files in os.walk(root):
        for name in files:
            with open(os.path.join(folder, name), errors="replace") as handle:
                text = handle.read()
            assert "auth_failure_delay" not in text and "penalty" not in text.lower(), name
