# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The MTA backend contract (mta_backend.py): render, parse and apply as separate pieces, one
Transaction sequence for both appliers, and the backends registry (backends.py)."""

from __future__ import annotations

import json
import os

import pytest

# postfix_tree and private_tmp are fixtures: imported so pytest finds them here.
from test_applier_cleanup import FakePostfix, postfix_change, postfix_tree, private_tmp, snapshot  # noqa: F401  pylint: disable=unused-import

from ansible_collections.mailsec.relay.plugins.module_utils import exim, mta_backend, policy, postfix, postfix_readback
from ansible_collections.mailsec.relay.plugins.module_utils.backends import BACKENDS
from ansible_collections.mailsec.relay.plugins.module_utils.postfix_apply import PostfixTransaction


def test_every_backend_brings_every_piece():
    assert sorted(BACKENDS) == ["exim", "postfix"]
    for name, backend in BACKENDS.items():
        assert isinstance(backend, mta_backend.MTABackend) and backend.name == name
        for piece in ("render", "collect", "parse", "transaction"):
            assert getattr(type(backend), piece) is not getattr(mta_backend.MTABackend, piece), "%s has no %s" % (name, piece)


def test_backends_render_with_the_mta_renderers():
    effective = policy.build_policy({"mailsec_relay_local_domains": ["example.test"], "mailsec_relay_networks": ["198.51.100.0/28"]}, "mx1.example.test")
    assert BACKENDS["postfix"].render(effective, postfix_version="3.7.11") == postfix.render_postfix(effective, postfix_version="3.7.11")
    assert BACKENDS["exim"].render(effective) == exim.settings(effective)


def test_backends_parse_with_the_readbacks():
    import test_readback_postfix  # the raw postconf outputs of the hardened lab host

    raw = test_readback_postfix.raw("hardened")
    assert BACKENDS["postfix"].parse(raw) == postfix_readback.interpret(raw)
    assert BACKENDS["postfix"].parse(raw)["policy"]["listeners"]


class Recorder(mta_backend.Transaction):
    def __init__(self, changed=True, ready=True, paths=(), settles=True):
        super().__init__()
        self.changed, self.ready, self.steps = changed, ready, []
        self.paths, self.settles = list(paths), settles

    def read_paths(self):
        return self.paths

    def settled(self):
        self.steps.append("settled")
        return self.settles

    def plan(self, check_mode, diff):
        self.steps.append("plan")
        return {"changed": self.changed}

    def prepare(self, check_mode, result):
        self.steps.append("prepare")
        return self.ready

    def validate(self, check_mode, result):
        self.steps.append("validate")

    def install(self, result):
        self.steps.append("install")


@pytest.mark.parametrize(
    "changed,ready,check_mode,steps",
    [
        (False, True, False, ["plan"]),  # nothing to change: nothing staged
        (True, True, True, ["plan", "prepare", "validate"]),  # check mode stops before going live
        (True, True, False, ["plan", "prepare", "validate", "install"]),
        (True, False, True, ["plan", "prepare"]),  # the MTA is not installed yet (check mode)
    ],
)
def test_transaction_sequence(changed, ready, check_mode, steps):
    transaction = Recorder(changed, ready)
    transaction.run(check_mode)
    assert transaction.steps == steps


@pytest.mark.parametrize(
    "changed,check_mode,settles,written",
    [
        (False, False, True, True),  # in sync: recorded
        (False, True, True, False),  # check mode writes nothing
        (True, True, True, False),
        (True, False, True, True),  # gone live, and a fresh plan finds nothing left
        (True, False, False, False),  # gone live, but the change does not hold: reported again next run
    ],
)
def test_transaction_apply_record(tmp_path, changed, check_mode, settles, written):
    from ansible_collections.mailsec.relay.plugins.module_utils import host_state

    conf = tmp_path / "main.cf"
    conf.write_text("x\n")
    record = str(tmp_path / "lib" / "record.json")
    transaction = Recorder(changed, paths=[str(conf)], settles=settles)
    transaction.run(check_mode, record=(record, "digest-1"))
    assert host_state.check_record(record) == ({"digest": "digest-1", "intact": True} if written else {"digest": None, "intact": False})
    assert bool(transaction.warnings) == (changed and not check_mode and not settles)


def test_transaction_removes_the_record_before_going_live(tmp_path):
    from ansible_collections.mailsec.relay.plugins.module_utils import host_state

    conf = tmp_path / "main.cf"
    conf.write_text("x\n")
    record = str(tmp_path / "record.json")
    host_state.write_record(record, "old", [str(conf)])
    transaction = Recorder(True, paths=[str(conf)])

    def failing_install(result):
        raise mta_backend.TransactionError("reload failed")

    transaction.install = failing_install
    with pytest.raises(mta_backend.TransactionError):
        transaction.run(False, record=(record, "new"))
    assert not os.path.exists(record)


def desired_of(config):
    unused, main, master, files = postfix_change(config)
    return {"main": main, "master": master, "master_purge_commands": [], "files": files, "adopt": False, "ownership_file": None}


def test_postfix_transaction_check_mode_validates_and_touches_nothing(postfix_tree, private_tmp):  # noqa: F811
    config, backups = postfix_tree
    fake = FakePostfix(None)
    before = snapshot(config)
    transaction = PostfixTransaction(fake, desired_of(config), config_dir=config, backup_dir=backups, run_tty=fake.tty)
    result = transaction.run(check_mode=True, diff=True)
    assert result["changed"] and result["msg"].startswith("would change") and "diff" in result and "validation" in result
    assert snapshot(config) == before and os.listdir(private_tmp) == []


def test_postfix_transaction_check_mode_reports_a_rejected_candidate(postfix_tree, private_tmp):  # noqa: F811
    config, backups = postfix_tree
    fake = FakePostfix("check")
    transaction = PostfixTransaction(fake, desired_of(config), config_dir=config, backup_dir=backups, run_tty=fake.tty)
    with pytest.raises(mta_backend.TransactionError) as caught:
        transaction.run(check_mode=True)
    assert caught.value.msg.startswith("the change would be rejected:") and caught.value.result["changed"]


def test_postfix_transaction_goes_live_and_rolls_back_on_failure(postfix_tree, private_tmp):  # noqa: F811
    config, backups = postfix_tree
    fake = FakePostfix("reload")
    before = snapshot(config)
    transaction = PostfixTransaction(fake, desired_of(config), config_dir=config, backup_dir=backups, run_tty=fake.tty)
    with pytest.raises(mta_backend.TransactionError) as caught:
        transaction.run(check_mode=False)
    assert "rolled back" in caught.value.msg and snapshot(config) == before
    fake = FakePostfix(None)
    # A backup directory of its own: PostfixApplier names them by second and process id.
    transaction = PostfixTransaction(fake, desired_of(config), config_dir=config, backup_dir=backups + "-2", run_tty=fake.tty)
    transaction.applier.confirm = lambda: True
    result = transaction.run(check_mode=False)
    assert result["changed"] and result["reloaded"] and result["msg"].startswith("changed")
    assert open(os.path.join(config, "mailsec", "relay_never.cidr")).read().startswith("198.51.100.51/32")


def test_postfix_transaction_records_what_its_plan_reads(postfix_tree, private_tmp, tmp_path):  # noqa: F811
    from ansible_collections.mailsec.relay.plugins.module_utils import host_state

    config, backups = postfix_tree
    record = str(tmp_path / "postconf.json")

    def transaction(desired):
        fake = FakePostfix(None)  # its postconf -e changes nothing: main.cf edits never land
        made = PostfixTransaction(fake, desired, config_dir=config, backup_dir=backups, run_tty=fake.tty)
        made.applier.confirm = lambda: True
        return made

    # main.cf edits that a fresh plan still finds missing: no record, and a warning saying so.
    unsettled = transaction(desired_of(config))
    assert unsettled.run(check_mode=False, record=(record, "d"))["changed"]
    assert not os.path.exists(record) and unsettled.warnings
    # Only tables (written for real): a fresh plan finds nothing left, so the record is written.
    tables_only = dict(desired_of(config), main={}, master=[])
    assert transaction(dict(tables_only, files=[dict(f) for f in tables_only["files"]])).run(check_mode=False, record=(record, "d"))
    assert host_state.check_record(record) == {"digest": "d", "intact": True}
    recorded = json.load(open(record))["files"]
    assert {os.path.join(config, "main.cf"), os.path.join(config, "master.cf"), os.path.join(config, "mailsec", "relay_never.cidr")} <= set(recorded)
    assert not transaction(dict(tables_only, files=[dict(f) for f in tables_only["files"]])).run(check_mode=False, record=(record, "d"))["changed"]
    with open(os.path.join(config, "main.cf"), "a") as handle:
        handle.write("# drift\n")
    assert host_state.check_record(record)["intact"] is False
