# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Import path for every test (unit and integration), set once: ``ansible_collections.mailsec.relay`` resolves to this
checkout through .cache/collections (``make collection-link``), unless it is already importable
(an installed collection, ansible-test's own tree)."""

from __future__ import annotations

import os
import sys

# The fake SMTP hosts (smtp_fakes/) are shared with bench/ and live at the repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

try:
    import ansible_collections.mailsec.relay.plugins.module_utils  # noqa: F401  pylint: disable=unused-import
except ImportError:
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".cache", "collections"))
