# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The relay policy model (module_utils/policy/), the relay_policy action and the policy role."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import yaml

from ansible_collections.mailsec.relay.plugins.module_utils import policy

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SECRET = "Tr0ub4dor-and-3"  # must never appear in any error or result

SELFSIGNED = {"mailsec_relay_tls_selfsigned": True}


def build(variables, host="mx1.example.test"):
    return policy.build_policy(variables, host)


def errors_of(variables, host="mx1.example.test"):
    with pytest.raises(policy.PolicyErrors) as caught:
        build(variables, host)
    return caught.value


def listener(name, port, role="mx", **extra):
    entry = {"name": name, "port": port, "role": role}
    entry.update(extra)
    return entry


# (id, variables, variable the error must name, text the message or fix must contain)
# Addresses here are validator input only: nothing connects to them (private and public ranges
# must be tested because users will write them; tests send traffic to loopback only).
INVALID = [
    ("open-v4", {"mailsec_relay_networks": ["0.0.0.0/0"]}, "mailsec_relay_networks[0]", "open relay"),
    ("open-v6", {"mailsec_relay_networks": ["198.51.100.0/28", "::/0"]}, "mailsec_relay_networks[1]", "open relay"),
    (
        "open-hidden-v4",
        {"mailsec_relay_networks": ["0.0.0.0/1", "128.0.0.0/1"], "mailsec_relay_allow_broad_networks": ["0.0.0.0/1", "128.0.0.0/1"]},
        "mailsec_relay_networks",
        "together cover 0.0.0.0/0",
    ),
    (
        "open-hidden-v6",
        {"mailsec_relay_networks": ["::/1", "8000::/1"], "mailsec_relay_allow_broad_networks": ["::/1", "8000::/1"]},
        "mailsec_relay_networks[0]",
        "carries all of IPv4",  # ::/1 holds ::ffff:0:0/96 and ::/96: refused before any merge
    ),
    ("except-negation", {"mailsec_relay_networks": ["!198.51.100.7"]}, "mailsec_relay_networks[0]", "everyone (except"),
    ("except-all", {"mailsec_relay_networks": ["all"]}, "mailsec_relay_networks[0]", "open relay"),
    ("except-any", {"mailsec_relay_networks": ["ANY"]}, "mailsec_relay_networks[0]", "open relay"),
    ("except-star", {"mailsec_relay_networks": ["*"]}, "mailsec_relay_networks[0]", "open relay"),
    ("except-0/0", {"mailsec_relay_networks": ["0/0"]}, "mailsec_relay_networks[0]", "open relay"),
    ("except-variable", {"mailsec_relay_networks_except": ["198.51.100.7"]}, "mailsec_relay_networks_except", "all except"),
    ("public-v4", {"mailsec_relay_networks": ["8.8.8.0/24"]}, "mailsec_relay_networks[0]", "public"),
    ("public-v6", {"mailsec_relay_networks": ["2600:1f00::/48"]}, "mailsec_relay_networks[0]", "public"),
    ("broad-v4", {"mailsec_relay_networks": ["10.0.0.0/8"]}, "mailsec_relay_networks[0]", "wider than /16"),
    ("broad-v6", {"mailsec_relay_networks": ["2001:db8::/32"]}, "mailsec_relay_networks[0]", "wider than /48"),
    (
        "broad-after-merge",
        {"mailsec_relay_networks": ["198.18.0.0/16", "198.19.0.0/16"]},
        "mailsec_relay_networks",
        "merge into 198.18.0.0/15",
    ),
    ("host-bits-v4", {"mailsec_relay_networks": ["198.51.100.5/24"]}, "mailsec_relay_networks[0]", "198.51.100.0/24"),
    ("host-bits-v6", {"mailsec_relay_networks": ["2001:db8:25::1/64"]}, "mailsec_relay_networks[0]", "2001:db8:25::/64"),
    ("not-a-network", {"mailsec_relay_networks": ["mx.example.test"]}, "mailsec_relay_networks[0]", "not an IPv4 or IPv6"),
    ("short-ipv4", {"mailsec_relay_networks": ["198.51/16"]}, "mailsec_relay_networks[0]", "not an IPv4 or IPv6"),
    ("bad-prefix", {"mailsec_relay_networks": ["198.51.100.0/33"]}, "mailsec_relay_networks[0]", "prefix length"),
    ("network-not-string", {"mailsec_relay_networks": [198511000]}, "mailsec_relay_networks[0]", "got a number"),
    (
        "never-swallows-global",
        {"mailsec_relay_networks": ["198.51.100.48/28"], "mailsec_relay_never_networks": ["198.51.100.0/24"]},
        "mailsec_relay_never_networks[0]",
        "covers the relay network 198.51.100.48/28",
    ),
    (
        "never-swallows-listener",
        {
            "mailsec_relay_never_networks": ["198.51.100.64/26"],
            "mailsec_relay_listeners": [listener("smtp", 25, relay_networks=["198.51.100.64/27"])],
        },
        "mailsec_relay_never_networks[0]",
        "mailsec_relay_listeners[0].relay_networks[0]",
    ),
    ("submission-profile-no-tls", {"mailsec_relay_profile": "mx_submission"}, "mailsec_relay_tls_cert", "need TLS material"),
    (
        "submission-listener-no-tls",
        {"mailsec_relay_listeners": [listener("smtp", 25), listener("submission", 587, "submission")], "mailsec_relay_auth_relay": True},
        "mailsec_relay_listeners[1].tls",
        "needs a certificate",
    ),
    (
        "submission-tls-none",
        dict(SELFSIGNED, mailsec_relay_listeners=[listener("smtp", 25), listener("submission", 587, "submission", tls="none")]),
        "mailsec_relay_listeners[1].tls",
        "protect AUTH with TLS",
    ),
    ("auth-on-mx", {"mailsec_relay_listeners": [listener("smtp", 25, auth=True)]}, "mailsec_relay_listeners[0].auth", "AUTH on an mx listener"),
    ("auth-relay-without-submission", {"mailsec_relay_auth_relay": True}, "mailsec_relay_auth_relay", "submission listeners"),
    (
        "auth-relay-relay-hub",
        {"mailsec_relay_profile": "relay_hub", "mailsec_relay_networks": ["198.51.100.0/28"], "mailsec_relay_auth_relay": "yes"},
        "mailsec_relay_auth_relay",
        "has none",
    ),
    (
        "port-clash-same-address",
        {"mailsec_relay_listeners": [listener("a", 25, address="198.51.100.10"), listener("b", 25, address="198.51.100.10")]},
        "mailsec_relay_listeners[1].port",
        "clashes with listener a",
    ),
    (
        "port-clash-wildcard",
        {"mailsec_relay_listeners": [listener("a", 2525, address="2001:db8:25::10"), listener("b", 2525)]},
        "mailsec_relay_listeners[1].port",
        "clashes",
    ),
    (
        "implicit-tls-on-25",
        dict(SELFSIGNED, mailsec_relay_listeners=[listener("smtp", 25, tls="implicit")]),
        "mailsec_relay_listeners[0].tls",
        "implicit TLS on port 25",
    ),
    ("port-zero", {"mailsec_relay_listeners": [listener("smtp", 0)]}, "mailsec_relay_listeners[0].port", "invalid port"),
    ("port-too-big", {"mailsec_relay_listeners": [listener("smtp", 65536)]}, "mailsec_relay_listeners[0].port", "invalid port"),
    ("port-name", {"mailsec_relay_listeners": [listener("smtp", "smtp")]}, "mailsec_relay_listeners[0].port", "invalid port"),
    ("port-bool", {"mailsec_relay_listeners": [listener("smtp", True)]}, "mailsec_relay_listeners[0].port", "invalid port"),
    (
        "null-client-networks",
        {"mailsec_relay_profile": "null_client", "mailsec_relay_networks": ["198.51.100.0/28"]},
        "mailsec_relay_networks",
        "null_client",
    ),
    (
        "null-client-local-domains",
        {"mailsec_relay_profile": "null_client", "mailsec_relay_local_domains": ["example.test"]},
        "mailsec_relay_local_domains",
        "null_client",
    ),
    (
        "null-client-public-listener",
        {"mailsec_relay_profile": "null_client", "mailsec_relay_listeners": [listener("smtp", 25, address="198.51.100.10")]},
        "mailsec_relay_listeners[0].address",
        "loopback only",
    ),
    ("relay-hub-without-networks", {"mailsec_relay_profile": "relay_hub"}, "mailsec_relay_networks", "none is listed"),
    ("client-names-without-risk", {"mailsec_relay_client_names": [".example.test"]}, "mailsec_relay_client_names", "accept_risk"),
    ("domain-invalid", {"mailsec_relay_local_domains": ["ex ample.test"]}, "mailsec_relay_local_domains[0]", "not a valid domain"),
    ("domain-underscore", {"mailsec_relay_relay_domains": ["relay_1.example.test"]}, "mailsec_relay_relay_domains[0]", "not a valid domain"),
    ("domain-wildcard", {"mailsec_relay_local_domains": ["*.example.test"]}, "mailsec_relay_local_domains[0]", "wildcards"),
    ("domain-is-ip", {"mailsec_relay_local_domains": ["198.51.100.1"]}, "mailsec_relay_local_domains[0]", "IP address"),
    ("domain-long-label", {"mailsec_relay_local_domains": ["a" * 64 + ".example.test"]}, "mailsec_relay_local_domains[0]", "63 characters"),
    (
        "domain-local-and-relay",
        {"mailsec_relay_local_domains": ["example.test"], "mailsec_relay_relay_domains": ["EXAMPLE.test."]},
        "mailsec_relay_relay_domains[0]",
        "also in mailsec_relay_local_domains",
    ),
    ("sasl-backend", {"mailsec_relay_sasl_backend": "cyrus"}, "mailsec_relay_sasl_backend", "dovecot"),
    ("sasl-user-no-name", {"mailsec_relay_sasl_users": [{"password": SECRET}]}, "mailsec_relay_sasl_users[0].name", "no name"),
    ("sasl-user-no-password", {"mailsec_relay_sasl_users": [{"name": "alice"}]}, "mailsec_relay_sasl_users[0].password", "no password"),
    (
        "sasl-password-colon",
        {"mailsec_relay_sasl_users": [{"name": "alice", "password": SECRET + ":x"}]},
        "mailsec_relay_sasl_users[0].password",
        "':'",
    ),
    ("sasl-user-not-mapping", {"mailsec_relay_sasl_users": ["alice:" + SECRET]}, "mailsec_relay_sasl_users[0]", "mapping"),
    ("sasl-user-unknown-key", {"mailsec_relay_sasl_users": [{"name": "alice", "pass": SECRET}]}, "mailsec_relay_sasl_users[0].pass", "unknown key"),
    ("smarthost-port", {"mailsec_relay_smarthost": "[198.51.100.100]:99999"}, "mailsec_relay_smarthost", "not a valid smarthost"),
    ("smarthost-bare-ipv6", {"mailsec_relay_smarthost": "2001:db8:25::100"}, "mailsec_relay_smarthost", "not a valid smarthost"),
    ("smarthost-bad-name", {"mailsec_relay_smarthost": "[sink..example.test]"}, "mailsec_relay_smarthost", "not a valid domain"),
    ("unknown-variable", {"mailsec_relay_netwroks": ["198.51.100.0/28"]}, "mailsec_relay_netwroks", "did you mean mailsec_relay_networks"),
    ("string-not-list", {"mailsec_relay_networks": "198.51.100.0/28"}, "mailsec_relay_networks", "expected a list, got a string"),
    ("dict-not-list", {"mailsec_relay_local_domains": {"example.test": True}}, "mailsec_relay_local_domains", "got a mapping"),
    ("bool-wrong", {"mailsec_relay_trust_loopback": "maybe"}, "mailsec_relay_trust_loopback", "expected a boolean"),
    ("listeners-not-list", {"mailsec_relay_listeners": {"name": "smtp", "port": 25}}, "mailsec_relay_listeners", "expected a list"),
    ("listener-not-mapping", {"mailsec_relay_listeners": ["smtp"]}, "mailsec_relay_listeners[0]", "expected a mapping"),
    ("listener-unknown-key", {"mailsec_relay_listeners": [listener("smtp", 25, prot=25)]}, "mailsec_relay_listeners[0].prot", "did you mean port"),
    ("listener-bad-role", {"mailsec_relay_listeners": [listener("smtp", 25, role="relay")]}, "mailsec_relay_listeners[0].role", "unknown role"),
    (
        "listener-bad-tls",
        {"mailsec_relay_listeners": [listener("smtp", 25, tls="start_tls")]},
        "mailsec_relay_listeners[0].tls",
        "did you mean starttls",
    ),
    (
        "listener-bad-address",
        {"mailsec_relay_listeners": [listener("smtp", 25, address="198.51.100.0/24")]},
        "mailsec_relay_listeners[0].address",
        "one IP address",
    ),
    (
        "listener-duplicate-name",
        {"mailsec_relay_listeners": [listener("smtp", 25), listener("smtp", 2525)]},
        "mailsec_relay_listeners[1].name",
        "already used",
    ),
    ("listeners-empty", {"mailsec_relay_listeners": []}, "mailsec_relay_listeners", "no listeners"),
    (
        "submission-on-25",
        dict(SELFSIGNED, mailsec_relay_auth_relay=True, mailsec_relay_listeners=[listener("smtp", 25, "submission")]),
        "mailsec_relay_listeners[0].role",
        "AUTH on 25",
    ),
    (
        "submission-relay-networks",
        dict(
            SELFSIGNED,
            mailsec_relay_auth_relay=True,
            mailsec_relay_listeners=[listener("smtp", 25), listener("sub", 587, "submission", relay_networks=["198.51.100.0/28"])],
        ),
        "mailsec_relay_listeners[1].relay_networks",
        "only after AUTH",
    ),
    (
        "listener-relay-public",
        {"mailsec_relay_listeners": [listener("smtp", 25, relay_networks=["198.51.100.0/28", "1.1.1.0/24"])]},
        "mailsec_relay_listeners[0].relay_networks[1]",
        "public",
    ),
    ("profile-unknown", {"mailsec_relay_profile": "mx-submission"}, "mailsec_relay_profile", "did you mean mx_submission"),
    ("profile-not-string", {"mailsec_relay_profile": ["mx"]}, "mailsec_relay_profile", "expected a string"),
    ("hostname-not-fqdn", {"mailsec_relay_hostname": "mx1"}, "mailsec_relay_hostname", "fully qualified"),
    ("tls-cert-without-key", {"mailsec_relay_tls_cert": "/etc/ssl/mx.crt"}, "mailsec_relay_tls_key", "set both"),
    (
        "tls-relative-path",
        {"mailsec_relay_tls_cert": "mx.crt", "mailsec_relay_tls_key": "/etc/ssl/mx.key"},
        "mailsec_relay_tls_cert",
        "absolute path",
    ),
    ("allow-broad-everything", {"mailsec_relay_allow_broad_networks": ["0.0.0.0/0"]}, "mailsec_relay_allow_broad_networks[0]", "open relay"),
    ("connect-negation", {"mailsec_relay_connect_deny": ["!198.51.100.7"]}, "mailsec_relay_connect_deny[0]", "negation"),
]


@pytest.mark.parametrize("variables, variable, text", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_invalid_policy_names_variable_and_fix(variables, variable, text):
    errors = errors_of(variables)
    named = [error for error in errors if error.variable == variable]
    assert named, "no error names %s; got:\n%s" % (variable, errors)
    assert any(text in error.message or text in error.fix for error in named), str(errors)
    for error in errors:
        assert error.fix and len(error.fix) > 10, error
        assert str(error) == "%s: %s Fix: %s" % (error.variable, error.message, error.fix)
        assert SECRET not in str(error)


def test_enough_invalid_cases():
    assert len(INVALID) >= 35
    assert len(set(case[0] for case in INVALID)) == len(INVALID)


def test_error_text_matches_the_documented_form():
    (error,) = errors_of({"mailsec_relay_networks": ["0.0.0.0/0"]}).errors
    assert str(error) == ("mailsec_relay_networks[0]: 0.0.0.0/0 would make this host an open relay. Fix: list only the networks of your own servers.")


def test_all_errors_are_collected_together():
    errors = errors_of(
        {
            "mailsec_relay_profile": "mx_submission",
            "mailsec_relay_networks": ["0.0.0.0/0", "10.0.0.0/8"],
            "mailsec_relay_local_domains": ["*.example.test"],
            "mailsec_relay_sasl_backend": "cyrus",
            "mailsec_relay_smarthost": "[::1",
            "mailsec_relay_typo": True,
        }
    )
    variables = {error.variable for error in errors}
    assert variables >= {
        "mailsec_relay_networks[0]",
        "mailsec_relay_networks[1]",
        "mailsec_relay_local_domains[0]",
        "mailsec_relay_sasl_backend",
        "mailsec_relay_smarthost",
        "mailsec_relay_typo",
        "mailsec_relay_tls_cert",
    }
    assert len(str(errors).splitlines()) == len(errors) >= 7


def test_passwords_never_in_errors_or_policy():
    bad_users = [
        {"name": "alice", "password": SECRET + ":"},
        {"password": SECRET},
        {"name": "bob", "pasword": SECRET},
        SECRET,
        [SECRET],
    ]
    errors = errors_of(dict(SELFSIGNED, mailsec_relay_profile="mx_submission", mailsec_relay_sasl_users=bad_users))
    assert len(errors) >= 5
    assert SECRET not in str(errors) and SECRET not in json.dumps([e.as_dict() for e in errors])
    good = build(dict(SELFSIGNED, mailsec_relay_profile="mx_submission", mailsec_relay_sasl_users=[{"name": "alice", "password": SECRET}]))
    assert good["sasl"] == {"backend": "dovecot", "users": ["alice"]}
    assert SECRET not in json.dumps(good)


# ---- valid policies ---------------------------------------------------------------------------


def documented_effective_policy():
    """The YAML example under 'Effective policy' in docs/policy-model.md."""
    with open(os.path.join(REPO, "docs", "policy-model.md")) as handle:
        text = handle.read()
    section = text.split("## Effective policy", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    return yaml.safe_load(block)


def test_documented_example_is_what_the_model_builds():
    effective = build(
        {
            "mailsec_relay_profile": "mx_submission",
            "mailsec_relay_hostname": "mx1.example.test",
            "mailsec_relay_local_domains": ["example.test"],
            "mailsec_relay_networks": ["198.51.100.48/28"],
            "mailsec_relay_never_networks": ["198.51.100.51"],
            "mailsec_relay_tls_selfsigned": True,
            "mailsec_relay_sasl_users": [{"name": "alice", "password": SECRET}],
            "mailsec_relay_smarthost": "[198.51.100.100]:25",
        },
        host="mx1",
    )
    assert effective == documented_effective_policy()


def test_profile_mx_defaults():
    effective = build({}, host="mx1.example.test")
    assert effective["profile"] == "mx"
    assert effective["hostname"] == "mx1.example.test"
    assert effective["auth_relay"] is False
    assert effective["loopback_networks"] == ["127.0.0.0/8", "::1/128"]
    assert effective["listeners"] == [
        {
            "name": "smtp",
            "address": "*",
            "port": 25,
            "role": "mx",
            "tls": "none",
            "auth": False,
            "relay_networks": [],
            "connect_allow": [],
            "connect_deny": [],
            "sender_login_match": False,
        }
    ]
    assert effective["tls"] == {"cert": None, "key": None, "selfsigned": False}
    assert effective["smarthost"] is None and effective["warnings"] == []


def test_profile_mx_with_certificate_offers_starttls():
    effective = build({"mailsec_relay_tls_cert": "/etc/ssl/mx.crt", "mailsec_relay_tls_key": "/etc/ssl/mx.key"})
    assert effective["listeners"][0]["tls"] == "starttls"
    assert effective["tls"] == {"cert": "/etc/ssl/mx.crt", "key": "/etc/ssl/mx.key", "selfsigned": False}


def test_profile_relay_hub():
    effective = build({"mailsec_relay_profile": "relay_hub", "mailsec_relay_networks": ["198.51.100.0/26", "2001:db8:25::/64"]})
    assert effective["relay_networks"] == ["198.51.100.0/26", "2001:db8:25::/64"]
    assert [item["name"] for item in effective["listeners"]] == ["smtp"]
    assert effective["listeners"][0]["relay_networks"] == effective["relay_networks"]
    assert effective["auth_relay"] is False


def test_profile_null_client():
    effective = build({"mailsec_relay_profile": "null_client", "mailsec_relay_smarthost": "smarthost.example.test:587"}, host="app1")
    assert effective["hostname"] == "app1.localdomain"
    assert effective["listeners"] == [
        {
            "name": "smtp",
            "address": "127.0.0.1",
            "port": 25,
            "role": "mx",
            "tls": "none",
            "auth": False,
            "relay_networks": [],
            "connect_allow": [],
            "connect_deny": [],
            "sender_login_match": False,
        }
    ]
    assert effective["smarthost"] == "smarthost.example.test:587"


def test_ipv6_normalization_and_order():
    effective = build(
        {
            "mailsec_relay_networks": ["2001:DB8:25:0::/64", "[2001:db8:26::]/64", "198.51.100.77", "2001:db8:27::1"],
            "mailsec_relay_never_networks": ["2001:db8:25::51"],
        }
    )
    assert effective["relay_networks"] == ["198.51.100.77/32", "2001:db8:25::/64", "2001:db8:26::/64", "2001:db8:27::1/128"]
    assert effective["never_relay_networks"] == ["2001:db8:25::51/128"]


def test_merge_and_deduplicate():
    effective = build({"mailsec_relay_networks": ["198.51.100.128/25", "198.51.100.0/25", "198.51.100.7", "198.51.100.0/25"]})
    assert effective["relay_networks"] == ["198.51.100.0/24"]


def test_per_listener_relay_networks():
    effective = build(
        {
            "mailsec_relay_networks": ["198.51.100.48/28"],
            "mailsec_relay_connect_deny": ["203.0.113.0/24"],
            "mailsec_relay_listeners": [
                {"name": "public", "address": "198.51.100.10", "port": 25, "role": "mx", "relay_networks": []},
                {
                    "name": "internal",
                    "address": "198.51.100.11",
                    "port": "25",
                    "role": "mx",
                    "relay_networks": ["198.51.100.64/26"],
                    "connect_deny": [],
                },
                {"name": "other", "address": "2001:db8:25::10", "port": 25, "role": "mx"},
            ],
        }
    )
    public, internal, other = effective["listeners"]
    assert public["relay_networks"] == [] and public["connect_deny"] == ["203.0.113.0/24"]
    assert internal["relay_networks"] == ["198.51.100.64/26"] and internal["port"] == 25 and internal["connect_deny"] == []
    assert other["relay_networks"] == ["198.51.100.48/28"] and other["address"] == "2001:db8:25::10"


def test_submission_listeners_never_relay_for_networks():
    effective = build(dict(SELFSIGNED, mailsec_relay_profile="mx_submission", mailsec_relay_networks=["198.51.100.48/28"]))
    roles = {item["name"]: (item["role"], item["auth"], item["relay_networks"]) for item in effective["listeners"]}
    assert roles == {
        "smtp": ("mx", False, ["198.51.100.48/28"]),
        "submission": ("submission", True, []),
        "submissions": ("submission", True, []),
    }


def test_submission_listener_defaults_by_port():
    effective = build(
        dict(
            SELFSIGNED,
            mailsec_relay_auth_relay=True,
            mailsec_relay_listeners=[listener("smtp", 25), listener("submissions", 465, "submission"), listener("sub", 587, "submission")],
        )
    )
    assert [item["tls"] for item in effective["listeners"]] == ["starttls", "implicit", "required"]


def test_client_names_accepted_with_warning():
    effective = build({"mailsec_relay_client_names": ["Relay.Example.COM.", ".example.test"], "mailsec_relay_client_names_accept_risk": True})
    assert effective["client_names"] == [".example.test", "relay.example.com"]
    assert len(effective["warnings"]) == 1 and "mailsec_relay_client_names" in effective["warnings"][0]


def test_sasl_users_without_auth_relay_warns():
    effective = build({"mailsec_relay_sasl_users": [{"name": "alice", "password": SECRET}]})
    assert effective["warnings"] and "auth_relay" in effective["warnings"][0]


def test_domains_normalized():
    effective = build(
        {"mailsec_relay_local_domains": ["Example.TEST.", "example.test", "bücher.example"], "mailsec_relay_relay_domains": ["backup.example.net"]}
    )
    assert effective["local_domains"] == ["example.test", "xn--bcher-kva.example"]
    assert effective["relay_domains"] == ["backup.example.net"]


def test_broad_and_public_networks_with_named_override():
    effective = build(
        {
            "mailsec_relay_networks": ["10.0.0.0/8", "8.8.8.0/24", "2001:db8::/32"],
            "mailsec_relay_allow_broad_networks": ["10.0.0.0/8", "8.8.0.0/16", "2001:db8::/32"],
        }
    )
    assert effective["relay_networks"] == ["8.8.8.0/24", "10.0.0.0/8", "2001:db8::/32"]


def test_never_network_inside_relay_network_is_the_normal_carve_out():
    effective = build({"mailsec_relay_networks": ["198.51.100.48/28"], "mailsec_relay_never_networks": ["198.51.100.51", "198.51.100.52/31"]})
    assert effective["never_relay_networks"] == ["198.51.100.51/32", "198.51.100.52/31"]


def test_trust_loopback_off_and_string_booleans():
    effective = build({"mailsec_relay_trust_loopback": "no"})
    assert effective["trust_loopback"] is False and effective["loopback_networks"] == []


def test_connect_lists_merged():
    effective = build({"mailsec_relay_connect_allow": ["198.51.100.0/25", "198.51.100.128/25", "::1"], "mailsec_relay_connect_deny": ["203.0.113.9"]})
    assert effective["connect_allow"] == ["198.51.100.0/24", "::1/128"]
    assert effective["connect_deny"] == ["203.0.113.9/32"]
    assert effective["listeners"][0]["connect_allow"] == ["198.51.100.0/24", "::1/128"]


def test_other_variables_and_own_fact_are_ignored():
    effective = build({"mailsec_relay_effective": {"stale": True}, "inventory_hostname": "x", "postfix_anything": 1})
    assert effective["profile"] == "mx"


@pytest.mark.parametrize(
    "inventory_hostname, expected",
    [
        ("mx1.example.test", "mx1.example.test"),
        ("MX1.Example.Test.", "mx1.example.test"),
        ("mx1", "mx1.localdomain"),
        ("203.0.113.10", "203-0-113-10.localdomain"),
    ],
)
def test_default_hostname(inventory_hostname, expected):
    assert build({}, host=inventory_hostname)["hostname"] == expected


@pytest.mark.parametrize(
    "smarthost, expected",
    [
        ("[198.51.100.100]:25", "[198.51.100.100]:25"),
        ("198.51.100.100", "[198.51.100.100]"),
        ("[2001:db8:25::100]:2525", "[2001:db8:25::100]:2525"),
        ("Sink.Example.Test", "sink.example.test"),
        ("[sink.example.test]", "[sink.example.test]"),
    ],
)
def test_smarthost_forms(smarthost, expected):
    assert build({"mailsec_relay_smarthost": smarthost})["smarthost"] == expected


def test_relay_allowed_helper_follows_the_model():
    effective = build(
        dict(
            SELFSIGNED,
            mailsec_relay_profile="mx_submission",
            mailsec_relay_networks=["198.51.100.48/28"],
            mailsec_relay_never_networks=["198.51.100.51"],
        )
    )
    smtp, submission = effective["listeners"][0], effective["listeners"][1]
    assert policy.relay_allowed(effective, smtp, "198.51.100.50")
    assert not policy.relay_allowed(effective, smtp, "198.51.100.51")  # never-relay wins
    assert not policy.relay_allowed(effective, smtp, "203.0.113.100")
    assert not policy.relay_allowed(effective, submission, "198.51.100.50")  # only AUTH relays there
    assert policy.relay_allowed(effective, smtp, "127.0.0.1")


def test_role_argument_specs_document_every_variable_once():
    with open(os.path.join(REPO, "roles", "policy", "meta", "argument_specs.yml")) as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert set(spec) == set(policy.VARIABLES)
    assert set(spec["mailsec_relay_listeners"]["options"]) == set(policy.LISTENER_KEYS)
    assert spec["mailsec_relay_sasl_users"]["options"]["password"]["no_log"] is True
    assert spec["mailsec_relay_profile"]["choices"] == list(policy.PROFILES)
    # The defaults live in module_utils/policy/ only: the role defines no variables.
    assert not os.path.exists(os.path.join(REPO, "roles", "policy", "defaults"))


# ---- the action plugin and the role, end to end -------------------------------------------------


def test_action_end_to_end(tmp_path):
    ansible_playbook = shutil.which("ansible-playbook", path=os.path.dirname(sys.executable)) or shutil.which("ansible-playbook")
    if not ansible_playbook:
        pytest.skip("ansible-playbook not installed")
    # A private collections path, so the test works in a fresh clone without .cache/.
    namespace = tmp_path / "collections" / "ansible_collections" / "mailsec"
    namespace.mkdir(parents=True)
    (namespace / "relay").symlink_to(REPO)
    fact_file = tmp_path / "effective.json"
    inventory = {
        "all": {
            "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable},
            "hosts": {
                "mx1.example.test": {
                    "mailsec_relay_profile": "mx_submission",
                    "mailsec_relay_tls_selfsigned": True,
                    "mailsec_relay_networks": ["198.51.100.48/28", "{{ '2001:db8:25::/64' }}"],
                    "mailsec_relay_sasl_users": [{"name": "alice", "password": "{{ 'Tr0ub4dor' + '-and-3' }}"}],
                },
                # Never contacted: the policy is checked on the controller (port 1 would refuse).
                "offline.example.test": {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 1},
                "bad.example.test": {
                    "mailsec_relay_networks": ["0.0.0.0/0"],
                    "mailsec_relay_listeners": [{"name": "smtp", "port": 25, "role": "mx", "tls": "implicit"}],
                    "mailsec_relay_sasl_users": [{"name": "alice", "password": SECRET + ":"}],
                },
            },
        }
    }
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    (tmp_path / "play.yml").write_text(
        yaml.safe_dump(
            [
                {
                    "name": "Policy role",
                    "hosts": "all",
                    "gather_facts": False,
                    "roles": ["mailsec.relay.policy"],
                    "tasks": [
                        {
                            "name": "Keep the fact",
                            "when": "inventory_hostname == 'mx1.example.test'",
                            "ansible.builtin.copy": {"content": "{{ mailsec_relay_effective | to_json }}", "dest": str(fact_file), "mode": "0600"},
                        }
                    ],
                },
                {
                    "name": "Explicit variables",
                    "hosts": "mx1.example.test",
                    "gather_facts": False,
                    "tasks": [
                        {
                            "name": "Explicit",
                            "mailsec.relay.relay_policy": {"variables": {"mailsec_relay_profile": "relay_hub"}},
                            "ignore_errors": True,
                            "register": "explicit",
                        },
                        {"name": "Check", "ansible.builtin.assert": {"that": ["explicit is failed", "'none is listed' in explicit.msg"]}},
                    ],
                },
            ]
        )
    )
    (tmp_path / "ansible.cfg").write_text("[defaults]\nretry_files_enabled = False\n")
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(tmp_path / "ansible.cfg"),
        ANSIBLE_COLLECTIONS_PATH=str(tmp_path / "collections"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
    )
    run = subprocess.run(
        [ansible_playbook, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "play.yml"), "-vvv"],
        cwd=str(tmp_path),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = run.stdout + run.stderr
    assert run.returncode != 0, output
    assert "mailsec_relay_networks[0]: 0.0.0.0/0 would make this host an open relay. Fix:" in output
    assert "mailsec_relay_listeners[0].tls: implicit TLS on port 25" in output
    assert re.search(r"bad\.example\.test\s*:.*failed=1", output), output
    assert re.search(r"mx1\.example\.test\s*:.*failed=0", output), output
    assert re.search(r"offline\.example\.test\s*:.*unreachable=0\s+failed=0", output), output
    assert SECRET not in output and "Tr0ub4dor" not in output
    effective = json.loads(fact_file.read_text())
    assert effective["relay_networks"] == ["198.51.100.48/28", "2001:db8:25::/64"]
    assert effective["sasl"] == {"backend": "dovecot", "users": ["alice"]}
    assert [item["port"] for item in effective["listeners"]] == [25, 587, 465]
