# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the verifier's probe engine against zoo targets; meant to run INSIDE the zoo prober's
network namespace (tests/zoo/zoolib.py starts it with nsenter).

stdin: {"targets": [...], "params": {...}, "spool": "<canary spool on this machine>", "wait": <canary wait, s>}
stdout: the engine's {results, summary} as JSON. Before any probe, every target address passes the
route guard of bench/benchlib.py: a documentation-range address reached from an address on the
zoo network, never through a gateway off the machine.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import benchlib  # noqa: E402

ZOO_NETS = ("198.51.100.128/25", "2001:db8:27::/64")


def main():
    import ipaddress

    request = json.load(sys.stdin)
    nets = [ipaddress.ip_network(n) for n in ZOO_NETS]
    for target in request["targets"]:
        for address in target["addresses"]:
            source = benchlib.check_route(address, hint="run inside zoo-prober's network namespace")
            if not any(ipaddress.ip_address(source) in net for net in nets if net.version == ipaddress.ip_address(source).version):
                raise SystemExit("%s would be reached from %s, not from the zoo network: refused" % (address, source))
    benchlib.import_paths()
    from ansible_collections.mailsec.relay.plugins.module_utils.smtp import engine

    params = {"vantage": "zoo", "transcripts": "failures", "canary": {"domain": "canary.test", "spool": request["spool"], "wait": request.get("wait", 10)}}
    params.update(request.get("params") or {})
    params["targets"] = request["targets"]
    outcome = engine.run(params)
    json.dump(outcome, sys.stdout)


if __name__ == "__main__":
    main()
