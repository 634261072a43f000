# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which module_utils module may import which: the layers drawn in README.md's Layout section.

A module imports only from lower layers; a package (policy/) is one unit with one layer, and its
modules import each other freely. smtp/ is a world of its own (bench/ uses it without
Ansible): it imports smtp/, findings and compact only. Nothing in module_utils imports plugins/modules,
plugins/action or ansible itself. The imports are read with ast, so no module is executed.
"""

from __future__ import annotations

import ast
import os
import re

import pytest
import yaml

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODULE_UTILS = os.path.join(ROOT, "plugins", "module_utils")
PREFIX = "ansible_collections.mailsec.relay.plugins.module_utils"

# Lowest first. README.md "Layout" draws the same order.
LAYERS = [
    {"grammar", "findings", "relay_rules", "compact", "host_state", "outbound", "plain"},  # vocabulary and rules, no collection imports
    {"policy"},
    {"mta_common", "readback_common", "mta_backend"},  # shared by the MTAs; mta_backend: the backend contract
    {"postfix", "exim"},  # renderers and appliers
    {"postfix_readback", "exim_readback", "postfix_apply", "exim_apply"},  # readback: effective MTA config -> policy; apply: Transaction
    {"backends", "drift", "verify_plan"},  # backends: the MTAs by name
    {"report"},
    {"report_files"},  # relay_report's arguments and file writing (module and action plugin)
]
LAYER = {name: index for index, names in enumerate(LAYERS) for name in names}

# Imports that break the layers today, each with its reason; remove an entry when it is fixed
# (the test fails on a stale entry, so the list only shrinks).
KNOWN_LEAKS = {
    # verify_plan builds per-host results with report's verdict rules (classify, host_status).
    ("verify_plan", "report"),
}


def module_files():
    for folder, _dirs, files in os.walk(MODULE_UTILS):
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                yield os.path.relpath(path, MODULE_UTILS)[:-3].replace(os.sep, "."), path


def imported(relname, path):
    """Every import of a file as absolute dotted names (module_utils-relative ones as 'mu:<name>')."""
    package = relname.rsplit(".", 1)[0] if "." in relname else ""
    names = []
    for node in ast.walk(ast.parse(open(path).read(), path)):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".") if package else []
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                target = ".".join(base + ([node.module] if node.module else []))
                names.extend("mu:" + (target + "." + alias.name if not node.module else target) for alias in node.names)
            else:
                module = node.module or ""
                if module == PREFIX:
                    names.extend("mu:" + alias.name for alias in node.names)
                else:
                    names.append(module)
    return [("mu:" + name[len(PREFIX) + 1 :]) if name.startswith(PREFIX + ".") else name for name in names]


def unit(relname):
    """The layered unit of a module: a package's modules (policy.networks) count as the package."""
    return relname.split(".")[0]


def violations():
    found, leaks_seen = [], set()
    for relname, path in module_files():
        own = unit(relname)
        for name in imported(relname, path):
            if name.startswith("mu:"):
                target = name[3:].lstrip(".")
                top = target.split(".")[0]
                if relname.startswith("smtp."):
                    # (the lowest layer's pure rules: the engine checks its targets' names by grammar)
                    if top not in ("smtp", "findings", "compact", "grammar"):
                        found.append("%s imports %s: smtp/ may import only smtp/, findings, compact and grammar" % (relname, target))
                    continue
                if top == "smtp":
                    continue  # smtp/ is below everything that is not smtp/
                if top not in LAYER or own not in LAYER:
                    found.append("%s imports %s: put the new module in LAYERS (tests/unit/test_layering.py)" % (relname, target))
                elif LAYER[top] >= LAYER[own] and top != own:
                    if (own, top) in KNOWN_LEAKS:
                        leaks_seen.add((own, top))
                    else:
                        found.append("%s (layer %d) imports %s (layer %d): a lower layer may not import a higher one" % (relname, LAYER[own], top, LAYER[top]))
            elif name == "ansible" or name.startswith(("ansible.", "ansible_collections.mailsec.relay.plugins.")):
                found.append("%s imports %s: module_utils stays free of Ansible and of plugins/modules, action" % (relname, name))
    return found, leaks_seen


def test_every_module_has_a_layer():
    missing = [rel for rel, _path in module_files() if not rel.startswith("smtp.") and unit(rel) not in LAYER]
    assert not missing, "add to LAYERS in tests/unit/test_layering.py and README.md Layout: %s" % missing


def test_no_lower_layer_imports_a_higher_one():
    found, _leaks = violations()
    assert not found, "\n".join(found)


def test_known_leaks_are_still_real():
    _found, leaks = violations()
    assert leaks == KNOWN_LEAKS, "fixed, remove from KNOWN_LEAKS: %s" % sorted(KNOWN_LEAKS - leaks)


@pytest.mark.parametrize(
    "relname,source,expected",
    [
        ("grammar", "from ansible_collections.mailsec.relay.plugins.module_utils import policy\n", "mu:policy"),
        ("policy.names", "from . import domains\n", "mu:policy.domains"),
        ("policy.builder", "from .errors import PolicyErrors\n", "mu:policy.errors"),
        ("smtp.engine", "from ..findings import finding_for\n", "mu:findings"),
        ("smtp.engine", "from .client import SMTPClient\n", "mu:smtp.client"),
        ("smtp.engine", "from . import client\n", "mu:smtp.client"),
    ],
)
def test_import_reader_resolves_every_spelling(tmp_path, relname, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    assert imported(relname, str(path)) == [expected]


def test_policy_package_units_stay_small():
    """The policy model stays a package of small units (issue 16): a module per concern, short functions."""
    folder = os.path.join(MODULE_UTILS, "policy")
    too_big = []
    for name in sorted(os.listdir(folder)):
        if not name.endswith(".py"):
            continue
        source = open(os.path.join(folder, name)).read()
        if source.count("\n") > 220:
            too_big.append("%s: %d lines (split it by concern)" % (name, source.count("\n")))
        for node in ast.walk(ast.parse(source, name)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno + 1 > 60:
                too_big.append("%s: %s() is %d lines" % (name, node.name, node.end_lineno - node.lineno + 1))
    assert not too_big, "\n".join(too_big)


# Private names (a leading '_') used across modules: each with its reason; the list only shrinks.
KNOWN_PRIVATE_USES = {
    # verify_plan counts verdicts with report's counter (part of the verify_plan -> report leak above).
    ("verify_plan", "report._count"),
}


def private_uses(relname, path):
    """(module, 'other._name') for every private name this module takes from another module_utils unit."""
    tree = ast.parse(open(path).read(), path)
    own, modules, uses = unit(relname), {}, set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").startswith(PREFIX):
            target = (node.module or "")[len(PREFIX) + 1 :]
            for alias in node.names:
                if not target:  # from PREFIX import exim as exim_backend
                    modules[alias.asname or alias.name] = alias.name
                elif alias.name.startswith("_") and unit(target) != own:
                    uses.add("%s.%s" % (target, alias.name))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules:
            target = modules[node.value.id]
            if node.attr.startswith("_") and not node.attr.startswith("__") and unit(target) != own:
                uses.add("%s.%s" % (target, node.attr))
    return {(relname, use) for use in uses}


def test_no_module_uses_private_names_of_another():
    found = set()
    for relname, path in module_files():
        found |= private_uses(relname, path)
    assert found - KNOWN_PRIVATE_USES == set(), "make the name public or move it: %s" % sorted(found - KNOWN_PRIVATE_USES)
    assert KNOWN_PRIVATE_USES <= found, "fixed, remove from KNOWN_PRIVATE_USES: %s" % sorted(KNOWN_PRIVATE_USES - found)


def test_private_name_reader_sees_both_spellings(tmp_path):
    path = tmp_path / "m.py"
    path.write_text(
        "from ansible_collections.mailsec.relay.plugins.module_utils import exim as backend\n"
        "from ansible_collections.mailsec.relay.plugins.module_utils.postfix import _quote\n"
        "backend._split(1)\n"
    )
    assert private_uses("exim_readback", str(path)) == {("exim_readback", "exim._split"), ("exim_readback", "postfix._quote")}


def test_readme_layout_names_every_module_utils_unit():
    """README.md's Layout lists every module_utils module or package (globs such as *_readback.py count)."""
    import fnmatch

    with open(os.path.join(ROOT, "README.md")) as handle:
        layout = handle.read().split("## Layout", 1)[1].split("\n## ", 1)[0]
    patterns = [line.split()[0][len("plugins/module_utils/") :] for line in layout.splitlines() if line.startswith("plugins/module_utils/")]
    units = sorted({unit(rel) for rel, _path in module_files()})
    missing = [u for u in units if not any(fnmatch.fnmatch(u + ".py", p) or p == u + "/" for p in patterns)]
    assert not missing, "add to README.md Layout: %s" % missing
    stale = [p for p in patterns if not any(fnmatch.fnmatch(u + ".py", p) or p == u + "/" for u in units)]
    assert not stale, "README.md Layout names what is not there: %s" % stale


def test_never_relay_walkthrough_stays_within_six_existing_files():
    with open(os.path.join(ROOT, "docs", "never-relay.md")) as handle:
        rows = [line for line in handle if re.match(r"\| \d+ \|", line)]
    files = [re.search(r"`([^`]+)`", row).group(1) for row in rows]
    assert 0 < len(files) <= 6, files
    assert all(os.path.isfile(os.path.join(ROOT, path)) for path in files), files


def test_the_stolen_credential_runner_copies_everything_the_engine_imports():
    """molecule/shared/stolen_credential.yml runs the engine on the prober from a hand-made copy of
    smtp/ and the modules it imports: an import added to smtp/ must be added to that copy too
    (CI at 050a63c: grammar.py was missing and the runner died with an ImportError)."""
    needed = set()
    for relname, path in module_files():
        if relname.startswith("smtp."):
            for name in imported(relname, path):
                if name.startswith("mu:"):
                    top = name[3:].lstrip(".").split(".")[0]
                    if top != "smtp":
                        needed.add(top + ".py")
    with open(os.path.join(MODULE_UTILS, "..", "..", "molecule", "shared", "stolen_credential.yml")) as handle:
        plays = yaml.safe_load(handle)
    copied = set()
    for task in plays[0]["tasks"]:
        if "ansible.builtin.copy" in task and "loop" in task:
            copied.update(task["loop"])
    assert needed <= copied, "add to the copy loop of molecule/shared/stolen_credential.yml: %s" % sorted(needed - copied)
