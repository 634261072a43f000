# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Write the zoo table into docs/verify.md (between its BEGIN/END zoo markers): per zoo server its
ground truth, the finding ids our verifier reported, and nmap smtp-open-relay's verdict on the
same MX listeners (nmap runs in the zoo prober's network namespace, like bench/probe_bench.py).

Run as root: .venv/bin/python tests/zoo/render_table.py [--keep-up]. The zoo is (re)started first: Debian's
sendmail limits each client to 10 connections per 10 minutes, so an earlier run would skew this one;
it is stopped afterwards unless --keep-up.
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import zoolib  # noqa: E402

DOC = os.path.join(zoolib.ROOT, "docs", "verify.md")
BEGIN = "<!-- BEGIN GENERATED: tests/zoo/render_table.py -->"
END = "<!-- END GENERATED: tests/zoo/render_table.py -->"


def table(outcome, nmap):
    found = zoolib.findings_by_server(outcome)
    lines = ["| server | truth | verifier | match | nmap smtp-open-relay (MX listeners) |", "|---|---|---|---|---|"]
    for name in zoolib.server_names():
        truth = sorted(zoolib.truth(name)["findings"])
        ours = sorted(found.get(name, {}).get("compared", set()))
        verdicts = ["%s %s: %s" % (address, port, verdict) for (server, address, port), (verdict, _seconds) in sorted(nmap.items()) if server == name]
        lines.append(
            "| %s | %s | %s | %s | %s |"
            % (
                name,
                ", ".join(truth) or "none",
                ", ".join(ours).replace("?", "unlabelled ") or "none",
                "yes" if set(truth) == set(ours) else "**no**",
                "<br>".join(verdicts) or "no plaintext MX listener",
            )
        )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep-up", action="store_true")
    args = parser.parse_args()
    zoolib.zoo("up")
    try:
        outcome = zoolib.verify()
        nmap, nmap_wall = zoolib.nmap_all(zoolib.nmap_listeners())
    finally:
        if not args.keep_up:
            zoolib.zoo("down")
    body = "\n".join(
        [
            BEGIN,
            "Generated %s by `tests/zoo/render_table.py`: %d zoo servers (tests/zoo), verifier %.1f s wall, nmap %.1f s "
            "wall (%d listener addresses, 4 at a time). *truth*: tests/zoo/&lt;server&gt;/truth.yml, established by hand; "
            '*verifier*: finding ids of every non-PASS, non-SKIP result ("unlabelled Txx:VERDICT": a result without a '
            "finding id); info findings (inconclusive, not required) are not listed."
            % (time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), len(zoolib.servers()), outcome["wall"], nmap_wall, len(nmap)),
            "",
            table(outcome, nmap),
            END,
        ]
    )
    with open(DOC) as handle:
        text = handle.read()
    if BEGIN in text and END in text:
        text = text[: text.index(BEGIN)] + body + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n## The zoo: foreign servers, ground truth, verifier and nmap\n\n" + body + "\n"
    with open(DOC, "w") as handle:
        handle.write(text)
    print(body)


if __name__ == "__main__":
    main()
