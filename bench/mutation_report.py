"""Per-module figures of the last `mutmut run` (what `make mutants` prints at the end).

mutmut keeps each module's results in `mutants/<path>.meta`; this reads them for the modules
`[tool.mutmut] only_mutate` names in pyproject.toml and prints, per module, how many mutants the
tests killed out of all of them (a timeout counts as killed, and is also shown on its own: the
tests noticed; a mutant no test reaches counts as surviving).

    .venv/bin/python bench/mutation_report.py               # the table, as text
    .venv/bin/python bench/mutation_report.py --markdown    # the same table as the README's
    .venv/bin/python bench/mutation_report.py --survivors   # also the mutants not killed
    .venv/bin/python bench/mutation_report.py --rerun       # the names not killed, to run again
    .venv/bin/python bench/mutation_report.py --refresh-copies  # drop mutmut's copies of the
                                                            # files it does not mutate, tests/ and also_copy

`mutmut show NAME` shows one mutant.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KILLED = {1, 3, 36, 37, 24, -24, 152, 255}  # killed, pytest error, timeouts, type check
TIMEOUTS = {36, 24, -24, 152, 255}
LABELS = {0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", None: "not checked"}


@dataclass
class Module:
    path: str
    killed: int = 0
    timeouts: int = 0
    total: int = 0
    unchecked: int = 0
    survivors: list[str] = field(default_factory=list)
    timed_out: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return 100 * self.killed / max(self.total, 1)


def config() -> dict[str, list[str]]:
    mutmut: dict[str, list[str]] = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))[
        "tool"
    ]["mutmut"]
    return mutmut


def modules() -> list[str]:
    return list(config()["only_mutate"])


def refresh_copies() -> None:
    """mutmut copies a file it does not mutate once and never again: drop those copies (and the
    tests'), so the next run tests today's code, not the code of the run that copied them."""
    mutated = {ROOT / "mutants" / path for path in modules()}
    for source in config()["source_paths"]:
        for copy in (ROOT / "mutants" / source).rglob("*.py"):
            if copy not in mutated:
                copy.unlink()
    shutil.rmtree(ROOT / "mutants" / "tests", ignore_errors=True)
    for folder in config().get("also_copy", []):  # data (prompts, audio) changes and loses files too
        shutil.rmtree(ROOT / "mutants" / folder, ignore_errors=True)


def load(path: str) -> Module | None:
    meta = ROOT / "mutants" / f"{path}.meta"
    if not meta.exists():
        return None
    codes: dict[str, int | None] = json.loads(meta.read_text(encoding="utf-8"))["exit_code_by_key"]
    module = Module(path, total=len(codes))
    for name, code in codes.items():
        if code in KILLED:
            module.killed += 1
            if code in TIMEOUTS:
                module.timeouts += 1
                module.timed_out.append(name)
        else:
            module.unchecked += code is None
            module.survivors.append(f"{name}  ({LABELS.get(code, 'suspicious')})")
    return module


def text(rows: list[Module]) -> list[str]:
    width = max(len(m.path) for m in rows)
    lines = []
    for m in rows:
        unchecked = f"  ({m.unchecked} not checked)" if m.unchecked else ""
        lines.append(
            f"{m.path:<{width}}  {m.killed:>5}/{m.total:<5} {m.share:5.1f}% killed"
            f"  ({m.timeouts} by timeout){unchecked}"
        )
    return lines


def markdown(rows: list[Module]) -> list[str]:
    lines = [
        "| module | killed / mutants | killed | of which timeouts | killed without timeouts | not checked |",
        "|---|---|---|---|---|---|",
    ]
    for m in rows:
        name = f"`{m.path}`" if m.path != "all" else "all"
        without = 100 * (m.killed - m.timeouts) / max(m.total, 1)
        cells = [name, f"{m.killed}/{m.total}", f"{m.share:.1f}%", m.timeouts, f"{without:.1f}%", m.unchecked]
        lines.append("| " + " | ".join(str(cell) for cell in cells) + " |")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--survivors", action="store_true", help="also list the mutants not killed")
    parser.add_argument("--rerun", action="store_true", help="print the names not killed")
    parser.add_argument("--refresh-copies", action="store_true", help="drop the copies of unmutated files")
    args = parser.parse_args()
    if args.refresh_copies:
        refresh_copies()
        return 0
    rows = []
    for path in modules():
        module = load(path)
        if module is None:
            print(f"{path}: no results (run `make mutants` first)", file=sys.stderr)
            return 1
        rows.append(module)
    if args.rerun:
        print("\n".join(name.split()[0] for m in rows for name in m.survivors))
        return 0
    everything = Module(
        "all",
        killed=sum(m.killed for m in rows),
        timeouts=sum(m.timeouts for m in rows),
        total=sum(m.total for m in rows),
        unchecked=sum(m.unchecked for m in rows),
    )
    print("\n".join((markdown if args.markdown else text)([*rows, everything])))
    if args.survivors:
        print("\n".join(["", *(name for m in rows for name in m.survivors)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
