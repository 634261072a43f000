# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the probe engine tests: a TLS context for the fake servers, a scenario runner."""

from __future__ import annotations

import asyncio

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import findings  # noqa: E402
from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine  # noqa: E402

# The collection's import path comes from tests/conftest.py.
from smtp_fakes import fakesmtp  # noqa: E402  (the repository root is on sys.path: tests/conftest.py)

PASSWORD = "s3cret-Pass"


@pytest.fixture(scope="session")
def tls_context(tmp_path_factory):
    certfile, keyfile = fakesmtp.make_cert(str(tmp_path_factory.mktemp("tls")))
    return fakesmtp.server_context(certfile, keyfile)


@pytest.fixture
def spool(tmp_path):
    path = tmp_path / "spool"
    path.mkdir()
    return str(path)


@pytest.fixture
def scenario(tls_context, spool):
    """Run the engine against a FakeHost: ``scenario(mx={...}, target={...}, **params)``."""

    def run(mx=None, submission=None, submissions=None, target=None, canary=True, **params):
        async def go():
            host = fakesmtp.FakeHost(tls_context, spool=spool, mx=mx, submission=submission, submissions=submissions)
            await host.start()
            try:
                spec = host.target()
                spec.update(target(spec) if callable(target) else target or {})  # a callable sees the ports
                options = {"targets": [spec], "timeout": 2, "greeting_timeout": 2, "retry_delay": 0.05, "smuggle_wait": 0.2}
                if canary:
                    options["canary"] = {"domain": "canary.test", "spool": spool, "wait": 0.5}
                options.update(params)
                outcome = await engine.run_async(options)
                check_findings(outcome)
                return outcome, host
            finally:
                await host.stop()

        return asyncio.run(go())

    return run


def verdicts(outcome, probe=None, port=None):
    """{(probe, case): verdict} of the results (optionally of one probe/port)."""
    return {(r["probe"], r["case"]): r["verdict"] for r in outcome["results"] if (probe is None or r["probe"] == probe) and (port is None or r["port"] == port)}


def check_findings(outcome):
    """The findings contract on every result: a catalogue id and a severity on each non-PASS,
    non-SKIP result, none on the others, and the reason in words always."""
    for r in outcome["results"]:
        where = (r["port"], r["probe"], r["case"], r["verdict"], r["reason"])
        assert r["reason"], where
        if r["verdict"] in ("PASS", "SKIP"):
            assert r["finding"] is None and r["severity"] is None, where
        else:
            assert r["finding"] in findings.CATALOG, where
            assert r["severity"] in findings.SEVERITIES, where
        assert not any(key.startswith("_") for key in r), where
