# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Both appliers clean up after every failure (issue 12): no copy of the configuration left in the
temp dir, no half-written file beside the live one, the live tree as it was.

Each test forces one step of the transaction to fail (a fake postconf/postfix/postmap or
update-exim4.conf/exim, or a failing file operation) and then inspects a private temp dir.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from ansible_collections.mailsec.relay.plugins.module_utils import exim
from ansible_collections.mailsec.relay.plugins.module_utils import postfix as pf


def snapshot(root):
    """{relative path: bytes} of every file under root (directories as None)."""
    result = {}
    for directory, dirs, names in os.walk(root):
        for name in dirs:
            result[os.path.relpath(os.path.join(directory, name), root)] = None
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                result[os.path.relpath(path, root)] = handle.read()
    return result


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """tempfile's directory for the duration of the test: whatever the applier leaves there shows."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    return str(tmp)


# ---- Postfix ------------------------------------------------------------------------------------

POSTFIX_STEPS = [
    "copytree",  # copying /etc/postfix into the stage
    "postconf-e",  # setting main.cf values in the stage
    "postconf-X",  # removing main.cf values in the stage
    "postconf-M",  # writing a master.cf service in the stage
    "file-mode",  # writing a table file into the stage (an unexpected exception, not an OSError)
    "postmap",  # building the hashed table in the stage
    "status",  # asking whether Postfix runs
    "validate-n",  # postconf -n on the stage
    "check",  # postfix check on the stage
    "cidr",  # postmap -q on a staged cidr table
    "backup-dir",  # creating the backup directory
    "commit-copy",  # copying a staged file beside the live one (half-written .mailsec-new)
    "reload",  # postfix reload
    "confirm",  # the listeners do not greet afterwards
]


class FakePostfix(object):
    """postconf/postfix/postmap stand-ins that fail at one named step."""

    def __init__(self, fail):
        self.fail = fail

    def __call__(self, cmd):
        tool, args = os.path.basename(cmd[0]), cmd[3:] if cmd[1:2] == ["-c"] else cmd[1:]
        if tool == "postconf":
            step = {"-e": "postconf-e", "-X": "postconf-X", "-n": "validate-n", "-M": "postconf-M"}.get(args[0], args[0])
            if args[:2] == ["-M", "-e"] and self.fail == "postconf-M":
                return 1, "", "postconf: fatal: bad master.cf entry"
            if step == self.fail and args[0] != "-M":
                return 1, "", "postconf: fatal: %s failed" % step
            return 0, "", ""
        if tool == "postmap":
            if cmd[1] == "-q":
                return (2, "", "postmap: warning: bad cidr") if self.fail == "cidr" else (1, "", "")
            if self.fail == "postmap":
                return 1, "", "postmap: fatal: cannot build"
            table = cmd[-1].split(":", 1)[1]
            open(table + ".db", "w").close()
            return 0, "", ""
        if tool == "postfix":
            action = cmd[-1]
            if action == "status":
                return (1, "", "not running") if self.fail == "status" else (0, "", "")
            if action == self.fail or (action == "start" and self.fail == "status"):
                return 1, "", "postfix: fatal: %s failed" % action
            return 0, "", ""
        return 127, "", "unexpected %r" % (cmd,)

    def tty(self, cmd):
        return (1, "postfix/postfix-script: fatal: check failed\n") if self.fail == "check" else (0, "")


@pytest.fixture
def postfix_tree(tmp_path):
    config = tmp_path / "etc-postfix"
    (config / "mailsec").mkdir(parents=True)
    (config / "main.cf").write_text("myhostname = old.example.test\n")
    (config / "master.cf").write_text("smtp inet n - y - - smtpd\n")
    (config / "mailsec" / "relay_never.cidr").write_text("# old\n")
    return str(config), str(tmp_path / "backups")


def postfix_change(config):
    main = {"myhostname": "mx1.example.test", "smtpd_tls_cert_file": None}
    master = [
        {
            "name": "submission",
            "type": "inet",
            "private": "n",
            "unpriv": "-",
            "chroot": "y",
            "wakeup": "-",
            "maxproc": "-",
            "command": "smtpd",
            "overrides": {"syslog_name": "postfix/submission"},
            "state": "present",
        }
    ]
    files = [
        {
            "path": os.path.join(config, "mailsec", "relay_never.cidr"),
            "content": "198.51.100.51/32 reject_unauth_destination\n",
            "mode": "0644",
            "map_type": "cidr",
        },
        {"path": os.path.join(config, "mailsec", "relay_clients"), "content": "relay.example.test OK\n", "mode": "0644", "map_type": "hash"},
    ]
    current = {"myhostname": "old.example.test", "smtpd_tls_cert_file": "/etc/ssl/old.pem"}
    changes = pf.compute_changes(current, {}, {}, main, master, files)
    return changes, main, master, files


@pytest.mark.parametrize("step", POSTFIX_STEPS)
def test_postfix_apply_cleans_up_after_a_failure_at_every_step(step, postfix_tree, private_tmp, monkeypatch):
    config, backups = postfix_tree
    fake = FakePostfix(step)
    applier = pf.PostfixApplier(fake, config_dir=config, backup_dir=backups, run_tty=fake.tty, confirm_timeout=0.1)
    changes, main, master, files = postfix_change(config)
    if step == "file-mode":
        files[0]["mode"] = "not-octal"
    if step == "copytree":
        real_copytree = shutil.copytree

        def half_copy(src, dst, *args, **kwargs):
            real_copytree(src, dst, *args, **kwargs)  # the copy is there, then the step fails
            raise OSError("No space left on device")

        monkeypatch.setattr(pf.shutil, "copytree", half_copy)
    if step == "backup-dir":
        os.makedirs(os.path.dirname(backups), exist_ok=True)
        open(backups, "w").close()  # a file where the backup directory should go
    if step == "commit-copy":
        real_copy2 = shutil.copy2

        def half_copy2(src, dst, **kwargs):
            if dst.endswith("relay_clients.db.mailsec-new"):  # after two files were swapped in
                with open(dst, "w") as handle:
                    handle.write("198.51.100.51/32 rej")  # half written
                raise OSError("Input/output error")
            return real_copy2(src, dst, **kwargs)

        monkeypatch.setattr(pf.shutil, "copy2", half_copy2)
    if step == "confirm":

        def no_greeting():
            raise pf.PostfixError("listener check failed: 127.0.0.1:25 connection refused")

        monkeypatch.setattr(applier, "confirm", no_greeting)
    before = snapshot(config)

    with pytest.raises((pf.PostfixError, OSError, ValueError)):
        applier.apply(changes, main, master, files, reload=True, backup=True)

    assert os.listdir(private_tmp) == [], "stray staging left in the temp dir after %s" % step
    assert snapshot(config) == before, "the live configuration changed after a failure at %s" % step
    assert not [p for p in before if p.endswith((".mailsec-new", ".mailsec-old"))]
    if os.path.isdir(backups):
        for entry in os.listdir(backups):
            # A backup directory stays only when it holds the files that were replaced (and restored).
            assert os.listdir(os.path.join(backups, entry)), "empty backup directory %s" % entry


def test_postfix_apply_without_failure_leaves_no_staging(postfix_tree, private_tmp):
    config, backups = postfix_tree
    fake = FakePostfix(None)
    applier = pf.PostfixApplier(fake, config_dir=config, backup_dir=backups, run_tty=fake.tty)
    applier.confirm = lambda: True
    changes, main, master, files = postfix_change(config)
    result = applier.apply(changes, main, master, files, reload=True, backup=True)
    assert os.listdir(private_tmp) == []
    assert open(os.path.join(config, "mailsec", "relay_never.cidr")).read().startswith("198.51.100.51/32")
    assert result["backup_path"] and os.listdir(result["backup_path"])


@pytest.mark.parametrize("step", ["copytree", "postconf-e", "postmap"])
def test_postfix_stage_alone_removes_its_directory_on_failure(step, postfix_tree, private_tmp, monkeypatch):
    """The check-mode path of the postconf module calls stage() directly."""
    config, backups = postfix_tree
    applier = pf.PostfixApplier(FakePostfix(step), config_dir=config, backup_dir=backups)
    changes, main, master, files = postfix_change(config)
    if step == "copytree":

        def no_copy(*args, **kwargs):
            raise OSError("disk full")

        monkeypatch.setattr(pf.shutil, "copytree", no_copy)
    with pytest.raises((pf.PostfixError, OSError)):
        applier.stage(changes, files)
    assert os.listdir(private_tmp) == []


# ---- Exim ---------------------------------------------------------------------------------------

EXIM_STEPS = ["copytree", "stage-write", "update-candidate", "bV", "bh", "install-write", "update-live", "backup-write"]


class FakeExim(object):
    def __init__(self, fail):
        self.fail = fail

    def __call__(self, argv, data=None):
        tool = os.path.basename(argv[0])
        if tool == "update-exim4.conf":
            if "-o" in argv:
                output = argv[argv.index("-o") + 1]
                with open(output, "w") as handle:
                    handle.write("candidate\n")
                return (1, "", "update failed") if self.fail == "update-candidate" else (0, "", "")
            if self.fail == "update-live":
                self.fail = None  # fails once; the rollback's regeneration works
                return 1, "", "update failed"
            return 0, "", ""
        if "-bV" in argv:
            return (1, "", "error in ACL") if self.fail == "bV" else (0, "", "")
        if "-bh" in argv:
            reply = "250 Accepted" if self.fail == "bh" else "550 5.7.1 Relay not permitted"
            return 0, "220 x\n250 hi\n250 OK\n%s\n221 bye\n" % reply, ""
        return 1, "", "unexpected %r" % (argv,)


@pytest.fixture
def exim_root(tmp_path):
    etc = tmp_path / "exim4"
    (etc / "conf.d" / "main").mkdir(parents=True)
    (etc / "conf.d" / "main" / "01_debian").write_text("debian\n")
    (etc / "conf.d" / "main" / "000_mailsec_relay").write_text("previous\n")
    return str(etc)


@pytest.mark.parametrize("step", EXIM_STEPS)
def test_exim_cycle_cleans_up_after_a_failure_at_every_step(step, exim_root, private_tmp, monkeypatch):
    path = os.path.join(exim_root, "conf.d/main/000_mailsec_relay")
    check = {"client": "203.0.113.254", "interface": "203.0.113.20", "port": 25, "recipient": "x@example.net", "expect": "deny"}
    config = exim.EximConfig(FakeExim(step), {path: {"content": "ours\n"}}, [check], exim="exim4", root=exim_root, pid_file=os.path.join(exim_root, "nopid"))
    if step == "copytree":
        real_copytree = shutil.copytree

        def half_copy(src, dst, *args, **kwargs):
            real_copytree(src, dst, *args, **kwargs)
            raise OSError("No space left on device")

        monkeypatch.setattr(exim.shutil, "copytree", half_copy)
    real_chmod = os.chmod
    failures = [step]  # each forced failure happens once: the rollback then works

    def failing_chmod(target, mode, **kwargs):
        staged = target.startswith(private_tmp)
        backup = ".mailsec-backup" in target
        if failures and ((step == "stage-write" and staged) or (step == "install-write" and not staged and not backup) or (step == "backup-write" and backup)):
            failures.pop()
            raise OSError("Read-only file system")
        return real_chmod(target, mode, **kwargs)

    monkeypatch.setattr(exim.os, "chmod", failing_chmod)
    before = snapshot(exim_root)

    with pytest.raises(exim.EximError):
        changes, unused = config.plan()
        config.validate()
        config.install(changes, reload=False, backup=True)

    assert os.listdir(private_tmp) == [], "stray staging left in the temp dir after %s" % step
    assert snapshot(exim_root) == before, "the live configuration changed after a failure at %s" % step
