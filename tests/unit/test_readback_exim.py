# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Exim readback (module_utils/exim_readback.py) on output captured in the lab image.

Fixtures in tests/unit/fixtures/readback/exim/ were captured by capture.py (the same commands the
module runs) from localhost/mailsec-exim:bookworm configured by the Exim renderer for
sample_policy_exim.json: ``hardened``; ``hardened_nopolicy`` (no desired policy: generic spot
checks); ``drifted_acl`` (an ``accept`` inserted at the top of acl_mailsec_rcpt, lists untouched);
``drifted_lists`` (0.0.0.0/0 added to mailsec_relay_smtp, never-relay list emptied,
``auth_advertise_hosts = *``).
"""

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import drift, policy  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils import exim_readback as er

HERE = os.path.join(os.path.dirname(__file__), "fixtures", "readback")


def raw(variant):
    with open(os.path.join(HERE, "exim", variant + ".json")) as handle:
        return json.load(handle)


def desired():
    with open(os.path.join(HERE, "sample_policy_exim.json")) as handle:
        return policy.build_policy(json.load(handle), "exim-drift")


def findings(readback):
    return drift.compare(desired(), readback["policy"], "exim") + drift.spot_check_findings("exim", readback["spot_checks"])


def failed(items):
    return dict((f["check"], f) for f in items if f["verdict"] == "FAIL")


@pytest.mark.parametrize(
    "text, items",
    [
        ("a : b", ["a", "b"]),
        ("<; 203.0.113.64/28 ; 2001:db8:26::40/124", ["203.0.113.64/28", "2001:db8:26::40/124"]),
        ("a::b : c", ["a:b", "c"]),  # a doubled colon is a literal colon
        ("", []),
    ],
)
def test_parse_list(text, items):
    assert er.parse_list(text) == items


def test_listener_endpoints_from_local_interfaces_and_ports():
    options = {"daemon_smtp_ports": "25 : 587", "local_interfaces": "<; ::0.25 ; 0.0.0.0.25 ; 198.51.100.7.587"}
    assert er.listener_endpoints(options) == [("*", 25), ("198.51.100.7", 587)]
    options = {"daemon_smtp_ports": "smtp : submission", "local_interfaces": "127.0.0.1 ; ::1"}
    assert er.listener_endpoints(dict(options, local_interfaces="<; 127.0.0.1 ; ::1")) == [("127.0.0.1", 25), ("127.0.0.1", 587), ("::1", 25), ("::1", 587)]
    assert er.listener_endpoints({"daemon_smtp_ports": "25"}) == [("*", 25)]


def test_hardened_reads_back_as_the_desired_policy():
    readback = er.interpret(raw("hardened"), desired())
    assert readback["mta"] == "exim" and readback["version"] == "4.96"
    got = readback["policy"]
    assert got["hostname"] == "exim-drift.example.test"
    assert got["local_domains"] == ["example.test"]
    assert got["relay_domains"] == ["backup.example.test"]
    assert got["never_relay_networks"] == ["203.0.113.71/32"]
    assert got["smarthost"] == "[203.0.113.120]:25"
    ports = dict((item["port"], item) for item in got["listeners"])
    assert (ports[25]["tls"], ports[25]["auth"]) == ("starttls", False)
    assert (ports[587]["tls"], ports[587]["auth"]) == ("required", True)
    assert (ports[465]["tls"], ports[465]["auth"]) == ("implicit", True)
    assert ports[25]["relay_networks"] == ["203.0.113.64/28", "2001:db8:26::40/124"]
    assert len(readback["spot_checks"]) >= 6
    assert failed(findings(readback)) == {}


def test_without_policy_an_outsider_is_refused_everywhere():
    readback = er.interpret(raw("hardened_nopolicy"))
    checks = readback["spot_checks"]
    assert sorted(c["port"] for c in checks) == [25, 465, 587]
    assert all(c["expect"] == "deny" and c["verdict"] == "deny" for c in checks)


def test_opened_acl_is_caught_by_spot_checks_only():
    readback = er.interpret(raw("drifted_acl"), desired())
    fails = failed(findings(readback))
    assert fails, "an opened ACL must be drift"
    assert all(check.startswith("spot ") for check in fails)  # the lists did not change
    external = [f for c, f in fails.items() if "*:25 external" in c]
    assert external and external[0]["actual"] == "accept" and "250" in external[0]["detail"]


def test_list_drift_names_each_change():
    fails = failed(findings(er.interpret(raw("drifted_lists"), desired())))
    assert "AUTH offered on *:25" in fails["listener *:25 auth"]["detail"]
    assert fails["listener *:25 relay"]["detail"].startswith("OPEN RELAY")
    assert "203.0.113.71/32" in fails["never_relay_networks"]["detail"]
    assert any(check.startswith("spot *:25 never_relay") for check in fails)


def test_be_input_assumes_tls_for_auth_only():
    text = er.be_input({"tls_advertise_hosts": "${if def:tls_in_cipher{}{*}}", "auth_advertise_hosts": "${if def:tls_in_cipher{*}{}}"}, {})
    assert "tls=${if def:tls_in_cipher{}{*}}" in text  # STARTTLS is offered before TLS
    assert "auth=${if eq{1}{1}{*}{}}" in text


def test_collect_sends_every_command_through_run():
    data = raw("hardened")
    seen = []

    def run(argv, data_in=None, **kwargs):
        seen.append(argv)
        if argv[1:] == ["-bV"]:
            return 0, data["bV"], ""
        if argv[1:] == ["-bP"]:
            return 0, data["bP"], ""
        if argv[1:] == ["-bP", "config"]:
            return 0, data["config"], ""
        if argv[1:] == ["-bP", "authenticators"]:
            return 0, data["authenticators"], ""
        if "-be" in argv:
            return 0, data["be"]["*.%s" % argv[-1].rsplit(".", 1)[1]], ""
        return 0, data["bh"][0]["output"], ""

    collected = er.collect(lambda argv, data=None: run(argv, data), "exim4", desired=desired())
    assert all(argv[0] == "exim4" for argv in seen)
    assert sum(1 for argv in seen if "-bh" in argv) == len(collected["bh"]) >= 6
    assert not any(flag in argv for argv in seen for flag in ("-bd", "-q", "-M", "-Mrm"))
