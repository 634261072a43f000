# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Split the Molecule scenarios into lanes that can run at the same time.

All scenarios share one network (mailsec-molecule) with fixed addresses. Two scenarios conflict
when they use a common address (a platform's ip, an --ip in extra_opts, a prober's extra address)
or a common container name; conflicting scenarios land in one group, and a group always runs in
one lane, one scenario after the other. Groups are packed into lanes longest first, by the time
each scenario took in the last run (.cache/test-logs/molecule-times.tsv) or, for a scenario not
timed yet, by its number of platforms.

Groups are always formed over every scenario in molecule/, also when only some are asked for, so
a group's lock name (its first scenario's name) is the same in every run: a subset run in another
checkout waits for the group it shares addresses with.

Prints one line per lane, each group of the lane as "<lock name>:<scenario>,<scenario>", only the
scenarios asked for.

With --clear-stale SCENARIO it removes instead the containers an interrupted run of SCENARIO's group
left on the Molecule network (a run killed during its destroy leaves them holding the group's
addresses, and the group's next scenario then fails to create). Call it only while holding the
group's lock: then no live run owns a container of the group.

    python tests/molecule_lanes.py [--lanes N] [--times FILE] scenario...
    python tests/molecule_lanes.py --clear-stale scenario
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
IP_OPT = re.compile(r"--ip6?=(\S+)")


def resources(scenario: str) -> set[str]:
    """Addresses and container names a scenario takes on the shared network."""
    config = yaml.safe_load((ROOT / "molecule" / scenario / "molecule.yml").read_text())
    taken: set[str] = set()
    for platform in config.get("platforms") or []:
        taken.add("name:" + platform["name"])
        for key in ("ip", "ipv6"):
            if platform.get(key):
                taken.add("ip:" + str(platform[key]))
        for opt in platform.get("extra_opts") or []:
            taken.update("ip:" + ip for ip in IP_OPT.findall(str(opt)))
    host_vars = ((config.get("provisioner") or {}).get("inventory") or {}).get("host_vars") or {}
    for host in host_vars.values():
        taken.update("ip:" + str(ip) for ip in (host or {}).get("prober_extra_addresses") or [])
    return taken


def groups(scenarios: list[str]) -> list[list[str]]:
    """Scenarios joined by shared resources (connected components), each in the given order."""
    taken = {name: resources(name) for name in scenarios}
    parent = {name: name for name in scenarios}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    for i, first in enumerate(scenarios):
        for second in scenarios[i + 1 :]:
            if taken[first] & taken[second]:
                parent[root(second)] = root(first)
    joined: dict[str, list[str]] = {}
    for name in scenarios:
        joined.setdefault(root(name), []).append(name)
    return list(joined.values())


def weights(scenarios: list[str], times_file: Path) -> dict[str, float]:
    """Seconds per scenario from the last run (all suites summed); platform count if untimed."""
    timed: dict[str, float] = {}
    if times_file.is_file():
        for line in times_file.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3 and parts[2].isdigit():
                timed[parts[0]] = timed.get(parts[0], 0.0) + int(parts[2])
    result = {}
    for name in scenarios:
        if name in timed:
            result[name] = timed[name]
        else:
            config = yaml.safe_load((ROOT / "molecule" / name / "molecule.yml").read_text())
            result[name] = 60.0 * len(config.get("platforms") or [])
    return result


def all_scenarios() -> list[str]:
    return sorted(path.parent.name for path in (ROOT / "molecule").glob("*/molecule.yml"))


def lanes(scenarios: list[str], count: int, weight: dict[str, float]) -> list[list[tuple[str, list[str]]]]:
    """(lock name, scenarios asked for) per group, packed into at most `count` lanes, heaviest
    group first onto the lightest lane."""
    asked = [(group[0], [name for name in group if name in scenarios]) for group in groups(sorted(set(all_scenarios()) | set(scenarios)))]
    asked = [(lock, names) for lock, names in asked if names]
    packed: list[list[tuple[str, list[str]]]] = [[] for unused in range(max(1, count))]
    load = [0.0] * len(packed)
    for lock, group in sorted(asked, key=lambda g: -sum(weight[s] for s in g[1])):
        lightest = load.index(min(load))
        packed[lightest].append((lock, group))
        load[lightest] += sum(weight[s] for s in group)
    return [lane for lane in packed if lane]


def group_container_names(scenario: str) -> list[str]:
    """Container names of every scenario in `scenario`'s group."""
    group = next(g for g in groups(sorted(set(all_scenarios()) | {scenario})) if scenario in g)
    return sorted({name.removeprefix("name:") for member in group for name in resources(member) if name.startswith("name:")})


def clear_stale(scenario: str, network: str = "mailsec-molecule") -> list[str]:
    """Remove the group's containers found on the Molecule network; only exact names, only there."""
    on_network = subprocess.run(
        ["podman", "ps", "-a", "--filter", f"network={network}", "--format", "{{.Names}}"], capture_output=True, text=True, check=True
    ).stdout.split()
    removed = [name for name in group_container_names(scenario) if name in on_network]
    if removed:
        subprocess.run(["podman", "rm", "-f", "-t", "0", *removed], capture_output=True, check=True)
    return removed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lanes", type=int, default=2)
    parser.add_argument("--times", type=Path, default=ROOT / ".cache" / "test-logs" / "molecule-times.tsv")
    parser.add_argument("--clear-stale", metavar="SCENARIO")
    parser.add_argument("scenarios", nargs="*")
    args = parser.parse_args(argv)
    if args.clear_stale:
        for name in clear_stale(args.clear_stale):
            print(f"molecule: removed container {name}, left on the network by an interrupted run", file=sys.stderr)
        return 0
    if not args.scenarios:
        parser.error("name the scenarios to split into lanes")
    weight = weights(args.scenarios, args.times)
    for lane in lanes(args.scenarios, args.lanes, weight):
        # One lock per group: a lane of several groups takes each group's lock in turn.
        print(" ".join(f"{lock}:{','.join(group)}" for lock, group in lane))
    return 0


if __name__ == "__main__":
    sys.exit(main())
