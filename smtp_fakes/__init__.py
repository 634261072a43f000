# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fake SMTP hosts on loopback, shared by the tests and the benches (not part of the collection).

hardened_host.py  what the fake hardened host answers: defaults, reply texts, EHLO, SASL, TLS material
fakesmtp.py       the tests' server: stream-based, every fault mode (Behaviour), run as a process too
lean_smtp.py      the fleet bench's endpoint: the same host, one buffered protocol per connection

Both tests/ and bench/ import it as ``smtp_fakes`` (the repository root on sys.path: tests/conftest.py,
bench/benchlib.py); neither imports the other's files.
"""
