# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/molecule_lanes.py: Molecule scenarios that share an address or a container name never
run at the same time; the others are spread over the lanes."""

import os
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import molecule_lanes  # noqa: E402


def scenario(tmp_path, name, platforms, extra=()):
    lines = ["platforms:"]
    for pname, ip in platforms:
        lines += [f"  - name: {pname}", f"    extra_opts: [--network=mailsec-molecule, --ip={ip}]"]
    lines += ["provisioner:", "  inventory:", "    host_vars:", f"      {platforms[-1][0]}:"]
    lines.append(f"        prober_extra_addresses: [{', '.join(extra)}]")
    path = tmp_path / "molecule" / name
    path.mkdir(parents=True)
    (path / "molecule.yml").write_text("\n".join(lines) + "\n")


@pytest.fixture
def fake_tree(tmp_path, monkeypatch):
    monkeypatch.setattr(molecule_lanes, "ROOT", tmp_path)
    scenario(tmp_path, "a", [("a-mta", "203.0.113.10"), ("a-prober", "203.0.113.100")], ["203.0.113.50"])
    scenario(tmp_path, "b", [("b-mta", "203.0.113.10"), ("b-prober", "203.0.113.101")])  # a's MTA address
    scenario(tmp_path, "c", [("c-mta", "203.0.113.20"), ("c-prober", "203.0.113.110")], ["203.0.113.50"])  # a's extra
    scenario(tmp_path, "d", [("d-mta", "203.0.113.30"), ("d-prober", "203.0.113.120")])
    scenario(tmp_path, "e", [("d-mta", "203.0.113.31"), ("e-prober", "203.0.113.121")])  # d's name
    scenario(tmp_path, "f", [("f-mta", "203.0.113.40"), ("f-prober", "203.0.113.140")])
    return tmp_path


def test_shared_address_or_name_joins_groups_transitively(fake_tree):
    assert molecule_lanes.groups(["a", "b", "c", "d", "e", "f"]) == [["a", "b", "c"], ["d", "e"], ["f"]]


def test_lanes_keep_groups_whole_and_balance_by_weight(fake_tree):
    weight = {"a": 100, "b": 100, "c": 100, "d": 150, "e": 100, "f": 60}
    packed = molecule_lanes.lanes(["a", "b", "c", "d", "e", "f"], 2, weight)
    assert packed == [[("a", ["a", "b", "c"])], [("d", ["d", "e"]), ("f", ["f"])]]


def test_subset_keeps_the_full_groups_lock_name(fake_tree):
    # Run alone, c still takes group a's lock: a run of a or b elsewhere uses its addresses.
    assert molecule_lanes.lanes(["c"], 2, {"c": 1}) == [[("a", ["c"])]]


def test_group_container_names_cover_the_whole_group(fake_tree):
    # c's group is a, b, c: a run killed in b's destroy leaves b's containers on c's addresses.
    assert molecule_lanes.group_container_names("c") == ["a-mta", "a-prober", "b-mta", "b-prober", "c-mta", "c-prober"]


def test_clear_stale_removes_only_the_groups_names_found_on_the_molecule_network(fake_tree, monkeypatch):
    calls = []

    class Done:
        def __init__(self, stdout=""):
            self.stdout = stdout

    def fake_run(argv, **kwargs):
        calls.append(argv)
        if argv[:3] == ["podman", "ps", "-a"]:
            assert "network=mailsec-molecule" in argv
            return Done("b-mta\nunrelated-container\n")  # what the network holds: one of the group, one not
        return Done()

    monkeypatch.setattr(molecule_lanes.subprocess, "run", fake_run)
    assert molecule_lanes.clear_stale("a") == ["b-mta"]
    assert [argv for argv in calls if argv[1] == "rm"] == [["podman", "rm", "-f", "-t", "0", "b-mta"]]


def test_repository_scenarios_form_more_than_one_group():
    # A new scenario that reuses another group's address would silently serialise the stage.
    groups = molecule_lanes.groups(molecule_lanes.all_scenarios())
    assert len(groups) >= 3, groups


def test_every_real_scenario_runs_on_every_suite():
    """The platform matrix (issue 13): every platform of every scenario takes its image from the
    suite run_all.sh passes in MOLECULE_SUITE, so no scenario is tied to one Debian release."""
    import yaml

    scenarios = sorted(p for p in os.listdir(os.path.join(ROOT, "molecule")) if os.path.isfile(os.path.join(ROOT, "molecule", p, "molecule.yml")))
    assert "postfix_brownfield" in scenarios
    for name in scenarios:
        with open(os.path.join(ROOT, "molecule", name, "molecule.yml"), encoding="utf-8") as handle:
            config = yaml.safe_load(handle)
        for platform in config["platforms"]:
            assert platform["image"].endswith(":${MOLECULE_SUITE:-trixie}"), (name, platform["name"], platform["image"])
