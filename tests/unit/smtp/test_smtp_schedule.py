# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the run's time goes (issues 11 and 17: the zoo in under 10 s): connection slots, the
relay forms of a listener that takes them, and the canary waits.

* engine.SlotPool: a request holds no slot of the run while its own address is full; across
  addresses the shared sessions come first, then the address with the most left to do.
* Runner._widen: a listener that takes the relay forms (DATA, then a wait for the canary) gets more
  sessions for them at once, so the waits start early and overlap the rest of the run.
* canary.CanaryWatcher: one poller for every wait; a wait ends when its message is there, and a
  message that never comes is only said so after the whole wait.
"""

from __future__ import annotations

import asyncio
import os
import time

from conftest import verdicts

from ansible_collections.mailsec.relay.plugins.module_utils.smtp import canary, engine
from smtp_fakes import fakesmtp


# -- SlotPool ------------------------------------------------------------------------------------
def test_a_full_address_holds_no_slot_of_the_run():
    """The own cases of a busy address used to take a slot of the run each and then wait for their
    address: with many of them, addresses with free slots of their own got none (over the zoo, 25 of
    64 connections open on average, some addresses idle for 12 s)."""

    async def scenario():
        pool = engine.SlotPool(2)
        busy = engine.HostPlan(1, 0, pool)
        idle = engine.HostPlan(1, 0, pool)
        await busy.acquire(4)  # busy's one connection is open
        queued = [asyncio.ensure_future(busy.acquire(4)) for unused in range(3)]
        await asyncio.sleep(0)
        other = asyncio.ensure_future(idle.acquire(4))
        await asyncio.sleep(0.01)
        assert other.done(), "the idle address waited behind the busy one's queue"
        assert not any(task.done() for task in queued) and pool.free == 0
        busy.release()
        await asyncio.sleep(0.01)
        assert sum(task.done() for task in queued) == 1
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)
        idle.release()
        busy.release()
        await asyncio.sleep(0.01)
        assert pool.free == 2 and busy.free == 1 and idle.free == 1  # every slot back, none lost to a cancel

    asyncio.run(scenario())


def test_shared_sessions_first_then_the_address_with_most_to_do():
    async def scenario():
        pool = engine.SlotPool(1)
        first = engine.HostPlan(5, 0, pool)
        light, heavy, relay = (engine.HostPlan(5, 0, pool) for unused in range(3))
        light.backlog, heavy.backlog = 2, 12
        await first.acquire(0)  # the run's only slot is taken
        order = []

        async def ask(plan, priority, name):
            await plan.acquire(priority)
            order.append(name)
            await asyncio.sleep(0.01)
            plan.release()

        tasks = [asyncio.ensure_future(ask(light, 4, "light own case"))]
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(ask(heavy, 8.5, "heavy own case")))
        await asyncio.sleep(0)
        tasks.append(asyncio.ensure_future(ask(relay, 0, "relay decision")))
        await asyncio.sleep(0.01)
        first.release()
        await asyncio.gather(*tasks)
        return order

    assert asyncio.run(scenario()) == ["relay decision", "heavy own case", "light own case"]


def test_a_shared_session_overtakes_the_own_cases_queued_before_it():
    """An address queued with its own cases' key must not keep its later shared session's request
    behind every other address (its key only gets better: it is queued again)."""

    async def scenario():
        pool = engine.SlotPool(1)
        holder, other, late = (engine.HostPlan(5, 0, pool) for unused in range(3))
        other.backlog, late.backlog = 20, 1
        await holder.acquire(0)
        own_other = asyncio.ensure_future(other.acquire(4))
        own_late = asyncio.ensure_future(late.acquire(4))
        await asyncio.sleep(0)
        shared_late = asyncio.ensure_future(late.acquire(0))
        await asyncio.sleep(0)
        holder.release()
        await asyncio.sleep(0.01)
        done = (own_other.done(), own_late.done(), shared_late.done())
        for task in (own_other, own_late, shared_late):
            task.cancel()
        await asyncio.gather(own_other, own_late, shared_late, return_exceptions=True)
        return done

    assert asyncio.run(scenario()) == (False, False, True)


def test_when_the_hold_for_shared_sessions_ends_every_free_slot_goes_out():
    """Slots kept for the shared sessions' renewals (reserve) hold own cases back for RESERVE_HOLD;
    then every free slot goes to them at once, not one per RESERVE_HOLD (exim-submission: six shared
    sessions on three listeners kept its five slots for the whole relay queue)."""

    async def scenario():
        plan = engine.HostPlan(3, 0, engine.SlotPool(10))
        plan.reserve = 3
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(asyncio.gather(*[plan.acquire(4) for unused in range(3)]), 5)
        return asyncio.get_running_loop().time() - started

    assert asyncio.run(scenario()) < engine.RESERVE_HOLD + 0.5


# -- widening the relay forms of a listener that takes them ----------------------------------------
def _peak_connections(server):
    """Count the connections ``server`` has open at once (its peak)."""
    handle = server._handle
    state = {"open": 0, "peak": 0}

    async def counted(reader, writer):
        state["open"] += 1
        state["peak"] = max(state["peak"], state["open"])
        try:
            await handle(reader, writer)
        finally:
            state["open"] -= 1

    server._handle = counted
    return state


def test_a_listener_that_takes_the_relay_forms_gets_more_sessions_for_them(tls_context, spool):
    """concurrency 3 over three listeners: one session per shared queue to begin with. The mx takes
    every relay form and drops the mail (each form: DATA, then the whole canary wait): its queue
    widens, and every form still ends as accept-then-drop, each after its whole wait."""

    async def go():
        host = fakesmtp.FakeHost(tls_context, spool=spool, mx=dict(relay="accept", deliver=False))
        mx = _peak_connections(host.mx)
        await host.start()
        try:
            started = time.monotonic()
            outcome = await engine.run_async(
                {
                    "targets": [host.target()],
                    "timeout": 2,
                    "greeting_timeout": 2,
                    "retry_delay": 0.05,
                    "concurrency": 3,
                    "probes": ["T11", "T12"],
                    "canary": {"domain": "canary.test", "spool": spool, "wait": 0.6},
                }
            )
            return outcome, host, mx, time.monotonic() - started
        finally:
            await host.stop()

    outcome, host, mx, wall = asyncio.run(go())
    relay = [r for r in outcome["results"] if r["port"] == host.mx.port and r["probe"] in ("T11", "T12")]
    assert len(relay) > 20
    assert all(r["verdict"] == "WARN" and r["finding"] == "accept_then_drop" for r in relay), [(r["case"], r["verdict"]) for r in relay]
    assert all("not delivered to the canary within 0.6s" in r["reason"] for r in relay)
    assert mx["peak"] >= 3, mx  # one session to begin with, more once the forms were taken
    assert all(v == "PASS" for (probe, unused_case), v in verdicts(outcome, port=host.submission.port).items() if probe in ("T11", "T12"))
    # the waits overlap: far less than one whole wait per form
    assert wall < 0.6 * len(relay) / 3


# -- the canary's waits -----------------------------------------------------------------------------
def _deliver(spool, name, token):
    path = os.path.join(spool, name)
    with open(path + ".tmp", "w") as handle:
        handle.write("Received: from prober (unknown [198.51.100.130])\r\nSubject: %s\r\n\r\nprobe %s\r\n" % (token, token))
    os.rename(path + ".tmp", path)


def test_canary_waits_share_one_look_at_the_spool_and_end_on_arrival(spool, monkeypatch):
    listed = []
    real_listdir = os.listdir

    def listdir(path):
        listed.append(time.monotonic())
        return real_listdir(path)

    monkeypatch.setattr(canary.os, "listdir", listdir)
    watcher = canary.CanaryWatcher(spool)
    arriving = ["t12p%02d-%010x" % (i, 0xA0000 + i) for i in range(30)]
    missing = ["t11p%02d-%010x" % (i, 0xB0000 + i) for i in range(30)]

    async def scenario():
        async def arrive():
            await asyncio.sleep(0.2)
            for index, token in enumerate(arriving):
                _deliver(spool, "msg%d" % index, token)

        started = time.monotonic()
        timed = {}

        async def wait(token, seconds):
            text = await watcher.wait(token, seconds)
            timed[token] = time.monotonic() - started
            return text

        sender = asyncio.ensure_future(arrive())
        texts = await asyncio.gather(*[wait(token, 1.0) for token in arriving + missing])
        await sender
        return texts, timed, time.monotonic() - started

    texts, timed, wall = asyncio.run(scenario())
    assert all(token in text for token, text in zip(arriving, texts[:30]))
    assert texts[30:] == [None] * 30
    assert max(timed[token] for token in arriving) < 0.6  # as soon as each message was there
    assert min(timed[token] for token in missing) >= 1.0  # never before the whole wait
    assert wall < 1.5
    # one poller for all 60 waits: about one listing per 50 ms, not one per wait and poll
    assert len(listed) <= 60 + 2 * wall / watcher.poll, len(listed)


class _Counted(list):
    """The watcher's messages, counting every look at one."""

    looked = 0

    def __iter__(self):
        for item in list.__iter__(self):
            _Counted.looked += 1
            yield item

    def __getitem__(self, index):
        _Counted.looked += 1
        return list.__getitem__(self, index)


def test_waits_for_messages_that_never_come_do_not_search_the_spool_over_and_over(spool):
    """Each wait used to search every message of the run 20 times a second (over the zoo: 78 waits
    for the whole 10 s, a few hundred messages): messages are indexed by their tokens' nonces."""
    for index in range(300):
        _deliver(spool, "m%d" % index, "t12p01-%010x" % index)
    watcher = canary.CanaryWatcher(spool)
    watcher.find("t12p01-%010x" % 0)
    watcher._texts = _Counted(watcher._texts)
    _Counted.looked = 0

    async def scenario():
        return await asyncio.gather(*[watcher.wait("t11p02-%010x" % (0xF00000 + i), 0.3) for i in range(20)])

    assert asyncio.run(scenario()) == [None] * 20
    assert _Counted.looked == 0, _Counted.looked  # (before: 20 waits x ~6 polls x 300 messages)
    assert "t12p01-%010x" % 299 in watcher.find("t12p01-%010x" % 299) and _Counted.looked == 1


def test_canary_find_by_token_and_unless(spool):
    watcher = canary.CanaryWatcher(spool)
    token, smuggled = "t17lflf-0123456789", "t17blflf-abcdef0123"
    _deliver(spool, "one", token + " " + smuggled)  # both in one message: the smuggled one was not split off
    assert watcher.find(smuggled, unless=token) is None
    _deliver(spool, "two", smuggled)
    watcher._last_scan = 0.0
    assert smuggled in watcher.find(smuggled, unless=token) and token not in watcher.find(smuggled, unless=token)
    # a token without a nonce of ours is still looked for in every message
    assert watcher.find("probe t17lflf") is not None
    assert watcher.find("t17lflf-0123456788") is None


def test_the_last_look_at_the_deadline_reads_the_spool(tmp_path):
    """A message that came after the latest scan but before the deadline is in time: the last look
    reads the spool even when a scan was made a moment ago (it used to be skipped then, and a relay
    that delivered in time became accept-then-drop)."""
    spool = str(tmp_path)
    watcher = canary.CanaryWatcher(spool, poll=10.0)  # the poller does not look again within the wait
    token = "t11p03-%010x" % 0xC0FFEE

    async def scenario():
        async def arrive():
            await asyncio.sleep(0.1)
            _deliver(spool, "late", token)

        sender = asyncio.ensure_future(arrive())
        text = await watcher.wait(token, 0.3)
        await sender
        return text

    text = asyncio.run(scenario())
    assert text is not None and token in text


def test_an_unchanged_spool_is_not_listed_again_but_a_new_message_is_seen_at_once(spool, monkeypatch):
    """A long-lived sink's spool holds thousands of files: it is listed again only when the directory
    changed (its mtime), and a message renamed into it is still found within a poll."""
    for index in range(50):
        _deliver(spool, "old%d" % index, "t12p01-%010x" % index)
    settled = time.time_ns() - 10 * 1_000_000_000
    os.utime(spool, ns=(settled, settled))
    listed = []
    real_listdir = os.listdir

    def listdir(path):
        listed.append(time.monotonic())
        return real_listdir(path)

    monkeypatch.setattr(canary.os, "listdir", listdir)
    watcher = canary.CanaryWatcher(spool)
    token = "t11p02-%010x" % 0xABCDEF

    async def quiet():
        return await watcher.wait(token, 0.6)

    assert asyncio.run(quiet()) is None
    # the first look and the forced look at the deadline; not one per poll (about 12)
    assert len(listed) <= 3, len(listed)

    async def arriving():
        async def arrive():
            await asyncio.sleep(0.2)
            _deliver(spool, "new", token)

        started = time.monotonic()
        sender = asyncio.ensure_future(arrive())
        text = await watcher.wait(token, 2.0)
        await sender
        return text, time.monotonic() - started

    text, took = asyncio.run(arriving())
    assert text is not None and token in text
    assert took < 0.5, took  # seen within a poll or two of its arrival, not at the deadline
