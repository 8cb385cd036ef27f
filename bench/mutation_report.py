"""Per-module figures of the last `mutmut run` (what `make mutants` prints at the end).

mutmut keeps each module's results in `mutants/<path>.meta`; this reads them for the modules
`[tool.mutmut] only_mutate` names in pyproject.toml and prints, per module, how many mutants the
tests killed out of all of them (a timeout counts as killed: the tests noticed; a mutant no test
reaches counts as surviving). `--survivors` also lists the mutants that were not killed, for
`mutmut show NAME`.

    .venv/bin/python bench/mutation_report.py [--survivors]
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # killed, pytest error, timeouts, type check
LABELS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}


def modules() -> list[str]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["mutmut"]["only_mutate"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--survivors", action="store_true", help="list the mutants not killed")
    args = parser.parse_args()
    rows, survivors, all_killed, all_total = [], [], 0, 0
    for module in modules():
        meta = ROOT / "mutants" / f"{module}.meta"
        if not meta.exists():
            print(f"{module}: no results (run `make mutants` first)", file=sys.stderr)
            return 1
        codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
        killed = sum(code in KILLED for code in codes.values())
        total = len(codes)
        unchecked = sum(code is None for code in codes.values())
        survivors += [
            f"{name}  ({LABELS.get(c, 'suspicious')})" for name, c in codes.items() if c not in KILLED
        ]
        rows.append((module, killed, total, unchecked))
        all_killed, all_total = all_killed + killed, all_total + total
    width = max(len(m) for m, *_ in rows)

    def line(name: str, killed: int, total: int) -> str:
        return f"{name:<{width}}  {killed:>4}/{total:<4} {100 * killed / max(total, 1):5.1f}% killed"

    for module, killed, total, unchecked in rows:
        print(line(module, killed, total) + (f"  ({unchecked} not checked)" if unchecked else ""))
    print(line("all", all_killed, all_total))
    if args.survivors:
        print("\n".join(["", *survivors]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
