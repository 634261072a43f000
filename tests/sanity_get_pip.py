# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stand-in for ansible-test's pip bootstrap script (get-pip.py), for machines that cannot fetch it.

ansible-test runs its cached ~/.ansible/test/cache/get_pip_<version>.py as
`python get_pip.py <pip install arguments>` inside each fresh sanity venv. This file does the same
job offline: bootstrap pip from the interpreter's bundled wheel (ensurepip), then install the
requested packages with the machine's own pip configuration (index, CA bundle).
"""

from __future__ import annotations

import ensurepip
import os
import subprocess
import sys

saved_env = dict(os.environ)
ensurepip.bootstrap(upgrade=True)
# ensurepip sets PIP_CONFIG_FILE=/dev/null, which would hide the machine's pip configuration
# (index URL, CA bundle) from the install below.
os.environ.clear()
os.environ.update(saved_env)
# get-pip accepts these; `pip install` does not.
args = [arg for arg in sys.argv[1:] if arg not in ("--no-setuptools", "--no-wheel")]
sys.exit(subprocess.call([sys.executable, "-m", "pip", "install", *args]))
