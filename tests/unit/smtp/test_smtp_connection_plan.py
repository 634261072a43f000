# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The connection plan per host (engine.HostPlan) and T17's fake end of data sent alone.

* A host that counts connections per client (Debian's Sendmail: ClientRate 10) answers the one
  after its limit with '421 4.3.2 Connection rate limit exceeded.': the relay decision must still
  rest on evidence (its sessions connect first and go on past their error budget), and only the
  probes that could not get a connection end INCONCLUSIVE, saying why; never a FAIL or WARN.
* ``max_connections_per_host`` caps the connections of a run to one address the same way.
* OpenSMTPD 6.8 takes a bare-LF end of data only when the smuggled commands arrive later.
"""

from __future__ import annotations

from conftest import verdicts

from smtp_fakes import fakesmtp

REQUIRED = (("T11", "P02"), ("T05", None), ("T06", "relay"))


def test_rate_limited_host_keeps_its_relay_decision(scenario):
    limit = fakesmtp.ConnectionLimit(allowed=10)
    shared = dict(connection_limit=limit)
    outcome, host = scenario(mx=shared, submission=shared, submissions=shared)
    assert limit.refused >= 1  # the engine did meet the limit
    assert sum(server.connections for server in host.servers) <= 10 + limit.refused
    results = outcome["results"]
    assert not [r for r in results if r["verdict"] in ("FAIL", "WARN")], [
        (r["probe"], r["case"], r["reason"]) for r in results if r["verdict"] in ("FAIL", "WARN")
    ]
    assert not [r for r in results if r["probe"] == "T22"]
    for port in (host.mx.port, host.submission.port, host.submissions.port):
        seen = verdicts(outcome, port=port)
        for key in REQUIRED:
            if key in seen:
                assert seen[key] == "PASS", (port, key)
        assert seen[("T20", "default")] == "PASS"
        assert seen[("T11", "P02")] == "PASS"
    untested = [r for r in results if r["verdict"] == "INCONCLUSIVE"]
    assert untested and all("refuses further connections from this client (421 Connection rate limit exceeded.)" in r["reason"] for r in untested)
    assert all(r["finding"] == "inconclusive" and r["severity"] == "info" for r in untested)
    # the connections went to the relay decision first: T00 and its checks on every listener
    assert all(r["verdict"] == "PASS" for r in results if r["probe"] == "T00")


def test_max_connections_per_host_caps_the_run(scenario):
    outcome, host = scenario(max_connections_per_host=8)
    assert sum(server.connections for server in host.servers) <= 8
    results = outcome["results"]
    assert not [r for r in results if r["verdict"] in ("FAIL", "WARN") or r["probe"] == "T22"]
    untested = [r for r in results if r["verdict"] == "INCONCLUSIVE"]
    assert untested and all("max_connections_per_host (8) is spent" in r["reason"] for r in untested)
    assert verdicts(outcome, port=host.submission.port)[("T06", "relay")] == "PASS"
    # without the cap the same host gives every probe its connection
    free, free_host = scenario()
    assert free["summary"]["INCONCLUSIVE"] == 0 and sum(server.connections for server in free_host.servers) > 8


def test_fake_end_taken_only_when_alone_is_smuggling(scenario):
    # OpenSMTPD 6.8: no PIPELINING; 'x<LF>.<LF>' ends the data when nothing follows it in the segment
    outcome, host = scenario(mx=dict(smuggle_alone_only=True, pipelining=False), probes=["T17"])
    mx = verdicts(outcome, "T17", port=host.mx.port)
    assert mx[("T17", "lf.lf")] == "FAIL" and mx[("T17", "cr.cr")] == "FAIL"
    lf = next(r for r in outcome["results"] if r["probe"] == "T17" and r["case"] == "lf.lf" and r["port"] == host.mx.port)
    assert lf["finding"] == "smtp_smuggling" and lf["reason"].startswith("fake end-of-data \\n.\\n taken as the end: 250")
    # the same server answers the one-write form with a refusal: sent that way, T17 saw nothing
    assert host.mx.transactions  # the message up to the fake end was taken as a whole message


def test_no_pause_after_the_fake_end_where_pipelining_is_offered(scenario):
    # RFC 2920: with PIPELINING the smuggled commands may follow in the same write; no wait per ending
    outcome, host = scenario(probes=["T17"], smuggle_wait=5)
    assert outcome["summary"]["seconds"] < 4
    assert all(v == "PASS" for v in verdicts(outcome, "T17", port=host.mx.port).values())


def test_addresses_of_one_host_share_its_connection_budget():
    """per_host counts per host: a dual-stack target's IPv4 and IPv6 addresses split it (Exim's
    smtp_accept_max counts both), a single-address target keeps all of it."""
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    dual = engine.Target({"name": "dual", "addresses": ["198.51.100.144", "2001:db8:27::144"], "listeners": [{"port": 25}]}, 0)
    single = engine.Target({"name": "single", "addresses": ["198.51.100.145"], "listeners": [{"port": 25}]}, 1)
    runner = engine.Runner([dual, single], engine.Options({"per_host": 10}))
    assert [runner.plan(address).free for address in dual.addresses] == [5, 5]
    assert runner.plan("198.51.100.145").free == 10


def test_slots_kept_for_shared_sessions_do_not_hold_other_cases_for_good():
    """A shared session may wait on an own case (the address's first TLS handshake, left for
    resumption): the slots kept for its renewal go to the waiting cases after RESERVE_HOLD, so a run
    with few connections per host cannot stop (the drift scenario's per_host 3 hung forever)."""
    import asyncio

    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    async def scenario():
        plan = engine.HostPlan(1, 0, engine.SlotPool(10))
        plan.reserve = 1  # a shared session keeps the only slot for its renewal, and asks for none
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(plan.acquire(4), 5)  # an own case (priority 4)
        return asyncio.get_running_loop().time() - started

    waited = asyncio.run(scenario())
    assert engine.RESERVE_HOLD - 0.1 <= waited < engine.RESERVE_HOLD + 1.0


def test_too_many_open_connections_means_fewer_at_once_not_none():
    """A 421 for connections open at once (Exim smtp_accept_max, Sendmail ClientConn) shrinks the
    plan by one and the case is retried; only a rate limit (Sendmail ClientRate) stops new ones."""
    import asyncio

    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    busy = ["Too many concurrent SMTP connections; please try again later.", "4.3.2 Too many open connections."]
    rate = ["4.3.2 Connection rate limit exceeded.", "4.7.0 Error: too many connection requests from 198.51.100.9"]
    assert all(engine.LIMIT_GREETING.search(text) and not engine.RATE_GREETING.search(text) for text in busy)
    assert all(engine.LIMIT_GREETING.search(text) and engine.RATE_GREETING.search(text) for text in rate)
    assert issubclass(engine.HostBusy, engine.ConnectFailed) and engine.HostBusy.transient

    async def scenario():
        plan = engine.HostPlan(3, 0, engine.SlotPool(10))
        await plan.acquire(0)
        plan.shrink()  # the host said busy on this connection
        plan.release()
        assert (plan.capacity, plan.free, plan.spent()) == (2, 2, False)
        for unused_round in range(3):
            plan.shrink()
        assert plan.capacity == 1 and plan.free == 1  # never below one

    asyncio.run(scenario())
