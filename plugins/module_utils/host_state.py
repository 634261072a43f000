# -*- coding: utf-8 -*-
# Copyright: mailsec.relay contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What is already in place on a mail host, read in one go (read-only).

The postfix, exim and dovecot roles read everything they need here before deciding what to do, so
that a no-op run skips its tasks instead of paying a round trip per task. The action plugin
``mailsec.relay.host_state`` ships this file's source and runs it with one remote command (no
module transfer, no temporary directory); the module of the same name imports it.

The file is also a script: ``python3 host_state.py '<spec as JSON>'`` prints the state as JSON.
Standard library only, Python 3.6+.

spec: {"packages": [...], "files": [...], "commands": {name: argv}, "versions": [...],
"records": {name: path}}. The answer has the same keys plus ``os`` (from os-release, so that no fact
gathering is needed to pick platform variables) and ``default_ipv4`` (the address of the default route's interface, or None).
``versions`` names daemons (postfix, exim, dovecot) whose upstream version the renderers gate on:
each is asked with its own cheap version command, never inferred from the OS release.

``records`` names apply records: what a configuration transaction (postconf, exim_config) wrote after
it left the host in sync with its input (``write_record``): the digest of that input and a fingerprint
of every file its plan reads. The answer per record is its ``digest`` and whether every one of those
files is still exactly as recorded (``intact``); a role whose input has the same digest on an intact
record knows the transaction would find nothing to do, and skips its call.
"""

from __future__ import absolute_import, division, print_function

import grp
import hashlib
import json
import os
import pwd
import re
import socket
import stat
import struct
import subprocess
import sys

__metaclass__ = type

# os-release IDs that Ansible reports under another os_family name than the capitalised ID.
_FAMILIES = (("debian", "Debian"), ("rhel", "RedHat"), ("fedora", "RedHat"), ("suse", "Suse"), ("arch", "Archlinux"), ("alpine", "Alpine"))
_DISTRIBUTIONS = {
    "debian": "Debian",
    "ubuntu": "Ubuntu",
    "rhel": "RedHat",
    "centos": "CentOS",
    "rocky": "Rocky",
    "almalinux": "AlmaLinux",
    "fedora": "Fedora",
    "opensuse-leap": "openSUSE Leap",
    "sles": "SLES",
    "alpine": "Alpine",
    "arch": "Archlinux",
}


def os_release(path="/etc/os-release"):
    """distribution, major version and family as Ansible's facts name them (ansible_facts.os_family)."""
    fields = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, sep, value = line.strip().partition("=")
                if sep:
                    fields[key] = value.strip().strip("\"'")
    except (IOError, OSError):
        return {"distribution": None, "major_version": None, "family": None, "codename": None}
    os_id = fields.get("ID", "").lower()
    lineage = [os_id] + fields.get("ID_LIKE", "").lower().split()
    family = next((name for key, name in _FAMILIES if key in lineage), _DISTRIBUTIONS.get(os_id, os_id.capitalize() or None))
    version = fields.get("VERSION_ID", "")
    return {
        "distribution": _DISTRIBUTIONS.get(os_id, os_id.capitalize() or None),
        "major_version": version.split(".")[0] or None,
        "family": family,
        "codename": fields.get("VERSION_CODENAME") or None,
    }


# Daemon -> (argv candidates, pattern of the version in the output). Each command answers without
# starting anything: postconf -d reads only built-in defaults, exim -bV checks the configuration and
# prints its version, dovecot --version prints it and exits.
VERSION_COMMANDS = {
    "postfix": ([["postconf", "-d", "-h", "mail_version"]], r"^(\d+(?:\.\d+)+)"),
    "exim": ([["exim4", "-bV"], ["exim", "-bV"]], r"Exim version (\d+(?:\.\d+)+)"),
    "dovecot": ([["dovecot", "--version"]], r"^(\d+(?:\.\d+)+)"),
}


def daemon_version(name, run=None):
    """Upstream version of an installed daemon ("3.10.5"), or None when it is missing or silent."""
    argvs, pattern = VERSION_COMMANDS[name]
    for argv in argvs:
        try:
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            stdout = proc.communicate()[0]
        except OSError:
            continue  # not installed under this name
        match = re.search(pattern, stdout or "", re.MULTILINE)
        if match:
            return match.group(1)
    return None


def default_ipv4(route_table="/proc/net/route"):
    """IPv4 address of the interface that holds the default route, or None (no route, no address).

    Read from the routing table and the interface itself: nothing is sent anywhere.
    """
    try:
        with open(route_table) as handle:
            rows = [line.split() for line in handle.readlines()[1:]]
    except (IOError, OSError):
        return None
    defaults = [row for row in rows if len(row) > 7 and row[1] == "00000000" and row[7] == "00000000"]
    if not defaults:
        return None
    ifname = min(defaults, key=lambda row: int(row[6]))[0]  # lowest metric wins, as the kernel picks
    import fcntl  # Linux only, like /proc/net/route

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        packed = fcntl.ioctl(sock.fileno(), 0x8915, struct.pack("256s", ifname[:15].encode()))  # SIOCGIFADDR
        return socket.inet_ntoa(packed[20:24])
    except (IOError, OSError):
        return None
    finally:
        sock.close()


RECORD_VERSION = 1


def fingerprint(path):
    """What a record keeps of one path: None when absent, else mode, owner, size, mtime and SHA-1 of the content.

    The mtime makes it strict: a file rewritten with the same bytes no longer matches (the transaction then
    runs and decides itself); it never makes a changed file look unchanged.
    """
    try:
        st = os.stat(path)
    except OSError:
        return ["dangling"] if os.path.lexists(path) else None
    digest = None
    if stat.S_ISREG(st.st_mode):
        with open(path, "rb") as handle:
            digest = hashlib.sha1(handle.read()).hexdigest()
    return [st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_mtime_ns, digest]


def write_record(path, digest, paths):
    """Record ``digest`` and the fingerprints of ``paths`` (root only, replaced atomically).

    Its own atomic write rather than exim.py's: this file is shipped and run alone (standard
    library only), so it imports nothing of the collection."""
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, 0o700)
    content = json.dumps({"version": RECORD_VERSION, "digest": digest, "files": dict((p, fingerprint(p)) for p in paths)}, sort_keys=True)
    temp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(content + "\n")
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def remove_record(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def check_record(path):
    """``digest`` of an apply record and whether every file it names is unchanged since (``intact``)."""
    try:
        with open(path) as handle:
            record = json.load(handle)
        files = record["files"]
        if record.get("version") != RECORD_VERSION or not isinstance(files, dict) or not files:
            raise ValueError("unknown record")
    except (IOError, OSError, ValueError, KeyError, TypeError):
        return {"digest": None, "intact": False}
    return {"digest": record.get("digest"), "intact": all(fingerprint(p) == fp for p, fp in files.items())}


def read(spec):
    out = {"packages": {}, "files": {}, "commands": {}, "os": os_release(), "default_ipv4": default_ipv4()}
    if spec.get("packages"):
        # rc 1 only means that some package is unknown to dpkg: those count as missing.
        try:
            proc = subprocess.Popen(
                ["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + list(spec["packages"]),
                stdout=subprocess.PIPE,
                stderr=open(os.devnull, "w"),
                universal_newlines=True,
            )
            listing = proc.communicate()[0]
        except OSError:
            listing = ""  # no dpkg: every package counts as missing, and the install task says why
        installed = set(line.split()[0] for line in listing.splitlines() if line.endswith(" installed"))
        out["packages"] = dict((name, name in installed) for name in spec["packages"])
    for path in spec.get("files", []):
        info = {"exists": os.path.exists(path)}
        if info["exists"]:
            st = os.stat(path)
            info["mode"] = "%04o" % (st.st_mode & 0o7777)
            info["owner"] = _name(pwd.getpwuid, st.st_uid)
            info["group"] = _name(grp.getgrgid, st.st_gid)
            if os.path.isfile(path):
                with open(path, "rb") as handle:
                    data = handle.read()
                info["sha1"] = hashlib.sha1(data).hexdigest()
                info["lines"] = len(data.splitlines())
        out["files"][path] = info
    for name, argv in spec.get("commands", {}).items():
        try:
            # The exit status is the answer (e.g. "is the daemon running"), never an error here.
            proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
            stdout = proc.communicate()[0]
            out["commands"][name] = {"rc": proc.returncode, "stdout": stdout.strip()}
        except OSError:
            out["commands"][name] = {"rc": 127, "stdout": ""}
    unknown = [name for name in spec.get("versions", []) if name not in VERSION_COMMANDS]
    if unknown:
        raise ValueError("versions: unknown daemon(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(VERSION_COMMANDS))))
    out["versions"] = dict((name, daemon_version(name)) for name in spec.get("versions", []))
    out["records"] = dict((name, check_record(path)) for name, path in (spec.get("records") or {}).items())
    return out


def _name(lookup, number):
    try:
        return lookup(number)[0]
    except KeyError:
        return str(number)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    sys.stdout.write(json.dumps(read(json.loads(argv[0]))) + "\n")


if __name__ == "__main__":
    main()
