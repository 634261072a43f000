# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zoo's ground truth files and the comparison the zoo test makes (tests/zoo/zoolib.py),
without podman: every truth file names only catalogued finding ids and listeners the zoo starts,
and the finding sets are built the way tests/integration/test_zoo.py compares them."""

import os
import re
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "zoo"))
sys.path.insert(0, os.path.join(ROOT, ".cache", "collections"))
import zoolib  # noqa: E402

from ansible_collections.mailsec.relay.plugins.module_utils import findings  # noqa: E402

NAMES = zoolib.server_names()


def test_zoo_lists_servers_with_unique_addresses():
    entries = zoolib.servers()
    octets = [octet for _name, _image, octet in entries]
    assert len(set(octets)) == len(octets)
    assert all(128 < int(octet) < 255 and octet != "130" for octet in octets)  # .130 is the prober
    assert {"postfix-stock", "postfix-submission", "postfix-postscreen", "exim-stock", "exim-submission", "opensmtpd", "sendmail"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_truth_file_is_complete(name):
    truth = zoolib.truth(name)
    assert set(truth["findings"]) <= set(findings.CATALOG), "unknown finding id in %s" % name
    assert len(set(truth["findings"])) == len(truth["findings"])
    assert truth["local_domains"] and truth["test_mailbox"].endswith("@" + truth["local_domains"][0])
    for listener in truth["listeners"]:
        assert listener["role"] in ("mx", "submission") and listener["tls"] in ("none", "starttls", "required", "implicit")
    if any(listener["role"] == "submission" for listener in truth["listeners"]):
        assert truth["auth"]["username"] and truth["auth"]["password"]
    with open(os.path.join(zoolib.ZOO_DIR, name, "setup.sh")) as handle:
        setup = handle.read()
    assert "mailsec" not in re.sub(r"(?m)^#.*$", "", setup), "a zoo server must not use this collection"


def result(target, probe, verdict, finding=None, severity=None):
    return {
        "target": target,
        "probe": probe,
        "case": None,
        "verdict": verdict,
        "finding": finding,
        "severity": severity,
        "address": "198.51.100.140",
        "port": 25,
        "reason": "",
    }


def test_finding_sets_compare_what_the_test_compares():
    outcome = {
        "results": [
            result("a", "T11", "PASS"),
            result("a", "T17", "SKIP"),
            result("b", "T11", "FAIL", "open_relay", "critical"),
            result("b", "T12", "FAIL", "open_relay", "critical"),
            result("b", "T16", "INCONCLUSIVE", "inconclusive", "info"),
            result("c", "T18", "WARN"),
        ]
    }
    table = zoolib.findings_by_server(outcome)
    assert table["a"]["compared"] == set()
    assert table["b"]["compared"] == {"open_relay"} and table["b"]["ignored"] == {"inconclusive"}
    # a non-PASS result without a finding id can never match a truth file
    assert table["c"]["compared"] == {"?T18:WARN"}


def test_target_comes_from_the_truth_file():
    target = zoolib.target("exim-percent-hack", "152")
    assert target["addresses"] == ["198.51.100.152", "2001:db8:27::152"]
    assert target["relay_domains"] == ["relay.test"]
    assert "auth" not in target
