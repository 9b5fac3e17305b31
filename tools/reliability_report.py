"""Write the tables and totals of docs/RELIABILITY.md from the cases tests/test_reliability.py recorded.

    NIN_RELIABILITY_RECORD=build/reliability.json python -m pytest tests/test_reliability.py   # records every case
    python tools/reliability_report.py             # rewrites the part of docs/RELIABILITY.md between the markers
    python tools/reliability_report.py --check     # exit 1 if the document's totals or rows are stale

Only the block between ``START`` and ``END`` is written; the rest of the document is kept as it is.
"""
import argparse
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RECORD = Path(os.environ.get("NIN_RELIABILITY_RECORD") or ROOT / "build" / "reliability.json")
DOC = ROOT / "docs" / "RELIABILITY.md"
START = "<!-- reliability:start (written by tools/reliability_report.py from build/reliability.json) -->"
END = "<!-- reliability:end -->"
SURFACES = ("library", "command line", "widgets")
TOTALS = ("bad inputs tried", "faults survived", "items lost")


def load(path=RECORD):
    """The recorded cases (a list of dicts)."""
    return json.loads(Path(path).read_text())


def totals(cases):
    """Bad inputs tried, faults survived (with nothing lost), items lost: counted from the cases."""
    return {"bad inputs tried": sum(c["kind"] == "bad input" for c in cases),
            "faults survived": sum(c["kind"] == "fault" and c["lost"] == 0 for c in cases),
            "items lost": sum(c["lost"] for c in cases)}


def read_totals(text):
    """The totals as the document states them (the rows of its totals table)."""
    found = {}
    for name in TOTALS:
        m = re.search(rf"^\| {re.escape(name)} \| (\d+) \|", text, flags=re.M)
        if m:
            found[name] = int(m.group(1))
    return found


def _cell(text):
    return str(text).replace("|", "\\|").replace("\n", " ")


def _quote(text):
    return f"“{_cell(text)}”"


def _matrix(cases):
    bad = [c for c in cases if c["kind"] == "bad input"]
    rows = {}
    for c in sorted(bad, key=lambda c: (c["order"], SURFACES.index(c["surface"]), c["via"])):
        rows.setdefault(c["key"], []).append(c)
    lines = ["| input | library | command line | widgets |", "| --- | --- | --- | --- |"]
    for key, group in rows.items():
        cells = []
        for surface in SURFACES:
            mine = [c for c in group if c["surface"] == surface]
            cells.append("<br>".join(f"{_cell(c['how'])} (`{_cell(c['via'])}`)" for c in mine) or "—")
        lines.append(f"| {_cell(group[0]['input'])} | " + " | ".join(cells) + " |")
    return lines


def _sentences(cases):
    bad = sorted((c for c in cases if c["kind"] == "bad input"),
                 key=lambda c: (c["order"], SURFACES.index(c["surface"]), c["via"]))
    lines = ["| input | where | what happens | test |", "| --- | --- | --- | --- |"]
    for c in bad:
        lines.append(f"| {_cell(c['input'])} | {c['surface']}: `{_cell(c['via'])}` | {_quote(c['outcome'])} | "
                     f"`{_cell(c['test'])}` |")
    return lines


def _faults(cases):
    faults = sorted((c for c in cases if c["kind"] == "fault"),
                    key=lambda c: (c["order"], SURFACES.index(c["surface"])))
    lines = ["| fault | where | what happens | items lost | test |", "| --- | --- | --- | --- | --- |"]
    for c in faults:
        lines.append(f"| {_cell(c['input'])} | {c['surface']}: `{_cell(c['via'])}` | {_quote(c['outcome'])} | "
                     f"{c['lost']} | `{_cell(c['test'])}` |")
    return lines


def render(cases):
    """The generated block: totals, the matrix, every sentence, the faults."""
    t = totals(cases)
    lines = [START, "", "## Totals", "", "| | count |", "| --- | --- |"]
    lines += [f"| {name} | {t[name]} |" for name in TOTALS]
    lines += ["", f"Counted from {len(cases)} recorded cases: every bad input is one input tried through one "
              "entry point; a fault counts as survived when its test passed and it lost nothing.", "",
              "## The matrix: each bad input through each surface", "",
              "How each surface answers, and through which entry point: *ValueError* in the library; *exit 2* on "
              "the command line (exit status 2, one line on standard error, no traceback); in the widgets a "
              "*message in the panel*, or *kept out by the control*; — where the surface has no such input "
              "(see the rules above). The sentences themselves are in the next table.", ""]
    lines += _matrix(cases)
    lines += ["", "## Every sentence", "", "Paths are shown as `<tmp>` (the test's scratch folder) and "
              "`$NIN_DATA_DIR`; ports as `PORT`.", ""]
    lines += _sentences(cases)
    lines += ["", "## Faults", ""]
    lines += _faults(cases)
    lines += ["", END]
    return "\n".join(lines)


def update(text, cases):
    """``text`` with its generated block replaced (or appended when it has none)."""
    block = render(cases)
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def stale(text, cases):
    """What is out of date in the document: wrong totals, or recorded tests it does not list."""
    problems = []
    if read_totals(text) != totals(cases):
        problems.append(f"totals {read_totals(text)} != recorded {totals(cases)}")
    problems += [f"{c['test']} is missing" for c in cases if c["test"] not in text]
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/RELIABILITY.md is stale")
    parser.add_argument("--record", default=str(RECORD), help="the recorded cases (default: NIN_RELIABILITY_RECORD, else build/reliability.json)")
    args = parser.parse_args(argv)
    if not Path(args.record).is_file():
        print(f"error: {args.record} does not exist; run python -m pytest tests/test_reliability.py first.",
              file=sys.stderr)
        return 2
    cases = load(args.record)
    text = DOC.read_text() if DOC.is_file() else "# Reliability\n"
    if args.check:
        problems = stale(text, cases)
        for p in problems:
            print(p)
        return 1 if problems else 0
    new = update(text, cases)
    if new != text:
        DOC.parent.mkdir(parents=True, exist_ok=True)
        DOC.write_text(new)
    t = totals(cases)
    print(f"{DOC.relative_to(ROOT)}: " + ", ".join(f"{v} {k}" for k, v in t.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
