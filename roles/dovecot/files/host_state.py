# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
# One round trip that tells the mailsec.relay roles what is already in place, so that a no-op run
# skips its tasks instead of paying a connection per task. Read-only. Argument: JSON
# {"packages": [...], "files": [...], "commands": {name: argv}}; prints JSON with the same keys.
# An MTA role reads its own needs and the dovecot role's (tasks_from: state_spec) in one call.
import hashlib
import json
import os
import pwd
import grp
import subprocess
import sys

spec = json.loads(sys.argv[1])
out = {"packages": {}, "files": {}, "commands": {}}
if spec.get("packages"):
    # rc 1 only means that some package is unknown to dpkg: those count as missing.
    proc = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + spec["packages"],
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, universal_newlines=True, check=False)
    installed = {line.split()[0] for line in proc.stdout.splitlines() if line.endswith(" installed")}
    out["packages"] = {name: name in installed for name in spec["packages"]}
for path in spec.get("files", []):
    info = {"exists": os.path.exists(path)}
    if info["exists"]:
        st = os.stat(path)
        info["mode"] = "%04o" % (st.st_mode & 0o7777)
        info["owner"] = pwd.getpwuid(st.st_uid).pw_name
        info["group"] = grp.getgrgid(st.st_gid).gr_name
        if os.path.isfile(path):
            with open(path, "rb") as handle:
                data = handle.read()
            info["sha1"] = hashlib.sha1(data).hexdigest()
            info["lines"] = len(data.splitlines())
    out["files"][path] = info
for name, argv in spec.get("commands", {}).items():
    try:
        # The exit status is the answer (e.g. "is the daemon running"), never an error here.
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                              check=False)
        out["commands"][name] = {"rc": proc.returncode, "stdout": proc.stdout.strip()}
    except OSError:
        out["commands"][name] = {"rc": 127, "stdout": ""}
print(json.dumps(out))
