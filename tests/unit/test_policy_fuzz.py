# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based fuzz of the policy model (issue 12): arbitrary values in every policy variable.

Properties: build_policy raises nothing but PolicyErrors (each naming a variable, with a message and
a fix), and every policy it accepts passes the renderers' grammar check (module_utils/grammar.py), so
what the model says yes to is what the renderers are willing to write.

10,300 examples in all (derandomized: the same ones on every run, so CI cannot flake), about 40 s of CPU.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ansible_collections.mailsec.relay.plugins.module_utils import grammar, policy

FUZZ = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

# Pieces of plausible and hostile input, so that values get past the first check often enough.
FRAGMENTS = [
    "198.51.100.",
    "203.0.113.",
    "10.",
    "0",
    "7",
    "48",
    "/",
    "24",
    "28",
    "32",
    "::ffff:",
    "::",
    "2001:db8:",
    "ffff",
    "[",
    "]",
    ":",
    "٣",
    "²",
    "２",
    "\n",
    "\r\n",
    "\x00",
    "\t",
    " ",
    "${run{/bin/sh}}",
    "$",
    "{",
    "}",
    "example.test",
    ".",
    "-",
    "_",
    "xn--",
    "bücher",
    "ÉCOLE",
    "\u200b",
    "/etc/ssl/",
    "..",
    "*",
    "!",
    "all",
    "mx",
    "submission",
    "starttls",
    "implicit",
    "required",
    "none",
    "dovecot",
    "alice",
    "@",
    "smtp",
    "true",
    "yes",
    "25",
    "587",
    "465",
    "65536",
    "mx_submission",
    "relay_hub",
    "null_client",
    ".pem",
    ",",
]
# Characters that break parsers: controls, separators, expansion syntax, non-ASCII digits, IDNA traps.
CHARACTERS = list("abcxyzAZ0123456789./:-_@[]{}$*!, ") + ["\n", "\r", "\t", "\x00", "\x1b", "\x7f", "٣", "²", "２", "é", "ü", "\u200b", "．", "\ufeff"]
glued = st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=6).map("".join)
text = st.text(alphabet=st.sampled_from(CHARACTERS), max_size=16) | glued | st.text(max_size=6)
scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=True) | text
anything = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=5)

# Numbers as users and attackers write them: ASCII, other scripts' digits, superscripts, full-width.
number_text = st.text(alphabet=st.sampled_from(list("0123456789 +-_\n") + ["٢", "٣", "²", "⁵", "２", "５", "\u0665", "\U0001d7d0"]), min_size=1, max_size=4)
network_text = st.builds(
    "{}/{}".format,
    st.sampled_from(["198.51.100.0", "10.0.0.0", "0.0.0.0", "::ffff:10.0.0.0", "::ffff:0:0", "::", "2001:db8::", "١٩٨.51.100.0"]),
    number_text,
)
LISTENER_FIELD_KEYS = list(policy.LISTENER_KEYS) + ["bogus"]
listener_values = (
    st.sampled_from([25, 587, 465, "25", "٢٥", "²⁵", "２５", " 25\n", 0, 70000, True])
    | st.sampled_from(["mx", "submission", "smtp", "starttls", "implicit", "none", "*", "127.0.0.1"])
    | anything
)
listeners = st.lists(st.dictionaries(st.sampled_from(LISTENER_FIELD_KEYS), listener_values, max_size=6) | scalars, max_size=3)
listener_ports = st.lists(
    st.fixed_dictionaries(
        {"name": st.sampled_from(["smtp", "sub", "smtp\n"]), "port": number_text | listener_values, "role": st.sampled_from(["mx", "submission"])},
        optional={"tls": st.sampled_from(["none", "starttls", "required", "implicit"]), "relay_networks": st.lists(network_text, max_size=2)},
    ),
    min_size=1,
    max_size=3,
)
sasl_users = st.lists(st.dictionaries(st.sampled_from(["name", "password", "bogus"]), scalars, max_size=3) | scalars, max_size=3)
networks = st.lists(network_text | glued | scalars, max_size=4)

VALUE_FOR = {name: anything for name in policy.VARIABLES}
VALUE_FOR.update(
    {
        "mailsec_relay_listeners": listeners | anything,
        "mailsec_relay_sasl_users": sasl_users | anything,
        "mailsec_relay_networks": networks | anything,
        "mailsec_relay_never_networks": networks | anything,
        "mailsec_relay_connect_allow": networks,
        "mailsec_relay_connect_deny": networks,
        "mailsec_relay_allow_broad_networks": networks,
        "mailsec_relay_profile": st.sampled_from(list(policy.PROFILES)) | anything,
        "mailsec_relay_tls_selfsigned": st.booleans() | anything,
    }
)
names = (
    st.sampled_from(sorted(policy.VARIABLES))
    | st.sampled_from(["Mailsec_relay_networks", "mailsec-relay_networks"])
    | text.map(lambda suffix: policy.PREFIX + suffix)
)


SUBMISSION = {"mailsec_relay_profile": "mx_submission", "mailsec_relay_tls_selfsigned": True}
NETWORK_VARIABLES = [name for name in policy.VARIABLES if name.endswith("networks") or name.startswith("mailsec_relay_connect_")]


def check(variables):
    try:
        effective = policy.build_policy(variables, "mx1.example.test")
    except policy.PolicyErrors as errors:
        assert len(errors) > 0
        for error in errors:
            assert isinstance(error, policy.PolicyError)
            assert isinstance(error.variable, str) and error.message and error.fix
        return None
    grammar.check_effective(effective)  # raises GrammarError if the model accepted a value outside its grammar
    # Numbers and networks were written in ASCII: int('٢٥') is 25, but such input is refused, not converted.
    for listener in variables.get("mailsec_relay_listeners") or []:
        if isinstance(listener.get("port"), str):
            assert listener["port"].strip().isascii(), listener
    for name in NETWORK_VARIABLES:
        for entry in variables.get(name) or []:
            assert entry.isascii(), (name, entry)
    assert all(grammar.parse_port(item["port"]) == item["port"] for item in effective["listeners"])
    return effective


@settings(max_examples=6000, **FUZZ)
@given(st.sampled_from(sorted(policy.VARIABLES)).flatmap(lambda name: st.tuples(st.just(name), VALUE_FOR[name])))
def test_any_value_in_any_one_variable(item):
    name, value = item
    variables = {name: value}
    if name not in ("mailsec_relay_profile", "mailsec_relay_tls_selfsigned"):
        variables.update(SUBMISSION)
    check(variables)


@settings(max_examples=1500, **FUZZ)
@given(listener_ports, networks)
def test_listeners_and_numbers(listeners_value, relay_networks):
    check(dict(SUBMISSION, mailsec_relay_listeners=listeners_value, mailsec_relay_networks=relay_networks))


@settings(max_examples=2000, **FUZZ)
@given(st.fixed_dictionaries({}, optional=dict(VALUE_FOR)))
def test_any_values_in_many_variables(variables):
    check(variables)


@settings(max_examples=800, **FUZZ)
@given(st.dictionaries(names, anything, max_size=4), st.sampled_from(sorted(policy.PROFILES)))
def test_any_variable_names(variables, profile):
    variables.setdefault("mailsec_relay_profile", profile)
    check(dict(variables, mailsec_relay_tls_selfsigned=True))


def test_the_fuzz_reaches_accepted_policies():
    """Not only errors: realistic values get through, and then match their grammars."""
    effective = check(
        {
            "mailsec_relay_profile": "mx_submission",
            "mailsec_relay_tls_selfsigned": True,
            "mailsec_relay_listeners": [{"name": "smtp", "port": "25", "role": "mx"}, {"name": "sub", "port": 587, "role": "submission"}],
            "mailsec_relay_networks": ["198.51.100.48/28", "::ffff:203.0.113.0/120"],
        }
    )
    assert effective is not None and effective["listeners"][0]["port"] == 25
