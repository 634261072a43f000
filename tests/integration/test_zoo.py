# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The verifier against the zoo of FOREIGN mail servers (tests/zoo): configured from each MTA's
own documentation and Debian's defaults, never by this collection's roles.

The real probe engine runs once over the whole zoo from inside the zoo prober's network namespace
(nsenter, route guard, canary sink), and for every server the set of finding ids it reports must
equal the server's ground truth (tests/zoo/<server>/truth.yml, established by hand, never from the
verifier): secure servers none at all (no FAIL, no WARN, nothing unverified), insecure ones
exactly theirs. Findings of severity "info" (inconclusive, not required) are listed, not compared.
"""

import os
import shutil
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "zoo"))
import zoolib  # noqa: E402

pytestmark = pytest.mark.skipif(
    shutil.which("podman") is None or shutil.which("nsenter") is None or os.geteuid() != 0, reason="needs rootful podman and nsenter (make setup)"
)

SERVERS = zoolib.server_names()


@pytest.fixture(scope="module")
def outcome():
    zoolib.zoo("up")
    try:
        result = zoolib.verify()
        print("zoo verified: %d servers, %d results in %.1f s (%s)" % (len(SERVERS), result["summary"]["results"], result["wall"], result["summary"]))
        yield result
    finally:
        zoolib.zoo("down")


def describe(results):
    return "\n".join(
        "  %s %s/%s port %s %s: %s [%s]" % (r["address"], r["probe"], r["case"] or "-", r["port"], r["verdict"], r.get("finding"), r["reason"][:160])
        for r in results
    )


def test_every_server_has_a_truth_file():
    assert len(SERVERS) >= 15
    for name in SERVERS:
        truth = zoolib.truth(name)
        assert isinstance(truth["findings"], list), name
        assert truth["listeners"], name


def _case(server):
    """A server whose truth file names a known verifier gap is a strict xfail: the mismatch is
    expected and shown, and the test fails once the verifier gets that server right."""
    gap = zoolib.truth(server).get("verifier_gap")
    marks = [pytest.mark.xfail(strict=True, reason="known verifier gap: %s" % gap)] if gap else []
    return pytest.param(server, marks=marks, id=server)


@pytest.mark.parametrize("server", [_case(name) for name in SERVERS])
def test_findings_match_ground_truth(outcome, server):
    expected = set(zoolib.truth(server)["findings"])
    seen = zoolib.findings_by_server(outcome).get(server, {"compared": set(), "ignored": set(), "results": []})
    assert seen["compared"] == expected, "%s: expected findings %s, verifier reported %s (info, not compared: %s)\n%s" % (
        server,
        sorted(expected) or "none",
        sorted(seen["compared"]) or "none",
        sorted(seen["ignored"]) or "none",
        describe(seen["results"]),
    )
