# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS to the smarthost (issue 14, outbound): policy, rendering, readback and drift."""

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
from ansible_collections.mailsec.relay.plugins.module_utils import postfix_readback as pr  # noqa: E402

pytest.importorskip("netaddr")
NULL_CLIENT = {"mailsec_relay_profile": "null_client", "mailsec_relay_smarthost": "[198.51.100.100]:587"}


def build(**extra):
    return policy.build_policy(dict(NULL_CLIENT, **extra), "app1.example.test")


def test_default_is_none_and_renders_nothing():
    effective = build()
    assert effective["smarthost_tls"] == "none"
    assert "smtp_tls_security_level" not in postfix.render_postfix(effective)["main"]
    assert "REMOTE_SMTP_HOSTS_REQUIRE_TLS" not in exim.render_main(effective)


def test_encrypt_is_rendered_for_both_mtas():
    effective = build(mailsec_relay_smarthost_tls="encrypt")
    main = postfix.render_postfix(effective)["main"]
    assert main["smtp_tls_security_level"] == "encrypt" and main["relayhost"] == "[198.51.100.100]:587"
    assert "\nREMOTE_SMTP_HOSTS_REQUIRE_TLS = *\n" in exim.render_main(effective)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"mailsec_relay_smarthost_tls": "encrpyt"}, "did you mean encrypt"),
        ({"mailsec_relay_smarthost_tls": "verfy"}, "did you mean verify"),
        ({"mailsec_relay_smarthost_tls": "encrypt", "mailsec_relay_smarthost": None}, "no smarthost is set"),
    ],
)
def test_bad_values_name_the_variable(values, words):
    with pytest.raises(policy.PolicyErrors) as caught:
        build(**values)
    errors = [e for e in caught.value if e.variable == "mailsec_relay_smarthost_tls"]
    assert errors and words in errors[0].message


def test_readback_and_drift():
    desired = build(mailsec_relay_smarthost_tls="encrypt")
    raw = {"x": "myhostname = app1.example.test\nsmtp_tls_security_level = may\n", "n": "", "M": "", "P": "", "tables": {}}
    actual = pr.interpret(raw)["policy"]
    assert actual["smarthost_tls"] == "none"
    fails = [f for f in drift.compare(desired, actual, "app1") if f["check"] == "smarthost_tls"]
    assert fails and fails[0]["verdict"] == "FAIL" and fails[0]["detail"] == "TLS to the smarthost from encrypt to none"
    raw["x"] = raw["x"].replace("= may", "= encrypt")
    assert pr.interpret(raw)["policy"]["smarthost_tls"] == "encrypt"
