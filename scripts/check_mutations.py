#!/usr/bin/env python3
"""The guard-mutation check: break each guarded invariant on purpose and prove the suite notices.

Each entry of tests/mutations.toml names a file, a piece of text in it (exactly once), what to
turn it into, and the tests that must fail. For every entry this script copies the working tree
to a temporary directory, applies that one change there, runs only those tests (the project's
venv, the copy first on the import path, a fresh set of databases per run as always) and
requires at least one of them to FAIL (an error in setup or collection does not count: a
mutation that merely breaks the build proves nothing about the tests).

It fails, naming the entry, when:
- a file or its text is not found, or the text occurs more than once (a refactor moved the
  guarded code: update the entry with it);
- a mutation survives (the listed tests all pass with the invariant broken);
- the listed tests error out instead of failing, or do not finish within --timeout.

    python scripts/check_mutations.py               # every entry, two at a time
    python scripts/check_mutations.py -k quota      # entries whose name contains "quota"
    python scripts/check_mutations.py --list        # check the entries apply, run nothing

scripts/test.sh calls it after a green pytest run with `--after-pytest <pytest's arguments>`: it
runs only when those arguments ran the whole suite (no test paths, -k, -m, --lf, ...), and not at
all with SKIP_MUTATION_CHECK=1.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_LIST = ROOT / "tests" / "mutations.toml"


@dataclass
class Mutation:
    name: str
    invariant: str
    file: str
    find: str
    replace: str
    tests: list[str]


@dataclass
class Outcome:
    mutation: Mutation
    verdict: str  # killed | SURVIVED | ERROR | TIMEOUT
    seconds: float
    failed: list[str] = field(default_factory=list)
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict == "killed"


def load(path: Path) -> list[Mutation]:
    data = tomllib.loads(path.read_text())
    out = []
    for i, entry in enumerate(data.get("mutation", []), start=1):
        missing = [k for k in ("name", "invariant", "file", "find", "replace", "tests") if k not in entry]
        if missing:
            raise SystemExit(f"{path}: entry #{i} ({entry.get('name', '?')}) lacks {', '.join(missing)}")
        if not entry["tests"]:
            raise SystemExit(f"{path}: entry {entry['name']} lists no tests")
        out.append(Mutation(**{k: entry[k] for k in ("name", "invariant", "file", "find", "replace", "tests")}))
    names = [m.name for m in out]
    if len(names) != len(set(names)):
        raise SystemExit(f"{path}: entry names must be unique")
    return out


def problems_of(m: Mutation, root: Path) -> list[str]:
    """Why this entry cannot be applied to the tree at `root` (empty: it can)."""
    target = root / m.file
    if not target.is_file():
        return [f"{m.name}: file {m.file} not found (moved or renamed? re-point the entry)"]
    count = target.read_text().count(m.find)
    out = []
    if count == 0:
        out.append(
            f"{m.name}: the text to break is not in {m.file} (the guarded code changed or moved: update the entry)"
        )
    elif count > 1:
        out.append(f"{m.name}: the text to break occurs {count} times in {m.file}; make `find` unique")
    if m.find == m.replace:
        out.append(f"{m.name}: `replace` equals `find`")
    for t in m.tests:
        test_file = t.split("::", 1)[0]
        if not (root / test_file).is_file():
            out.append(f"{m.name}: test file {test_file} not found")
    return out


def working_tree_files(root: Path) -> list[str]:
    """Tracked and new (not ignored) files as they are on disk, plus built extension modules."""

    def ls(*args: str) -> list[str]:
        out = subprocess.run(["git", "ls-files", "-z", *args], cwd=root, check=True, capture_output=True).stdout
        return [p for p in out.decode().split("\0") if p]

    files = ls("--cached", "--others", "--exclude-standard")
    files += [p for p in ls("--others", "--ignored", "--exclude-standard", "--", "*.so") if not p.startswith(".venv/")]
    return sorted({f for f in files if (root / f).is_file()})


def copy_tree(root: Path, dest: Path, files: list[str]) -> None:
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target)


def failed_tests(junit: Path) -> tuple[list[str], int, int]:
    """(failed test ids, failures, errors) from pytest's junit XML."""
    if not junit.exists():
        return [], 0, 0
    tree = ET.parse(junit)
    failed, failures, errors = [], 0, 0
    for case in tree.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        failure = case.find("failure")
        if failure is not None:
            failures += 1
            why = (failure.get("message") or "").strip().splitlines()
            failed.append(f"{name}: {why[0][:200]}" if why else name)
        if case.find("error") is not None:
            errors += 1
    return failed, failures, errors


def run_one(m: Mutation, python: str, files: list[str], timeout: float, keep: bool) -> Outcome:
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix=f"mutation-{m.name}-"))
    try:
        copy_tree(ROOT, tmp, files)
        problems = problems_of(m, tmp) if m.file else []
        if problems:
            return Outcome(m, "ERROR", time.monotonic() - started, detail="; ".join(problems))
        if m.file:  # the baseline run changes nothing
            target = tmp / m.file
            target.write_text(target.read_text().replace(m.find, m.replace, 1))
        junit = tmp / ".mutation-junit.xml"
        # The copy first on the import path, for the test run and every service process it starts.
        env = {**os.environ, "PYTHONPATH": str(tmp), "PYTHONDONTWRITEBYTECODE": "1"}
        cmd = [python, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}", *m.tests]
        proc = subprocess.Popen(
            cmd, cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # its own session: the run and its service processes
            proc.communicate()
            return Outcome(
                m,
                "TIMEOUT",
                time.monotonic() - started,
                detail=f"the tests did not finish within {timeout:.0f}s: they must fail, not hang",
            )
        seconds = time.monotonic() - started
        failed, failures, errors = failed_tests(junit)
        tail = "\n".join(output.decode(errors="replace").strip().splitlines()[-15:])
        if proc.returncode == 0:
            return Outcome(m, "SURVIVED", seconds, detail=tail)
        if proc.returncode == 1 and failures:
            return Outcome(m, "killed", seconds, failed=failed)
        detail = f"pytest exit {proc.returncode}, {failures} failed, {errors} errors (an error is not a kill)"
        return Outcome(m, "ERROR", seconds, detail=f"{detail}\n{tail}")
    finally:
        if keep:
            print(f"  kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)


SELECTING_OPTIONS = (
    "-k",
    "-m",
    "--lf",
    "--last-failed",
    "--ff",
    "--failed-first",
    "--deselect",
    "--ignore",
    "--ignore-glob",
    "--sw",
    "--stepwise",
    "--co",
    "--collect-only",
)


def selects_a_subset(pytest_args: list[str]) -> bool:
    """True when these pytest arguments run less than the whole suite (paths, -k, --lf, ...)."""
    for arg in pytest_args:
        if arg.split("=", 1)[0] in SELECTING_OPTIONS:
            return True
        if not arg.startswith("-") and (ROOT / arg.split("::", 1)[0]).exists():
            return True
    return False


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--list-file", type=Path, default=DEFAULT_LIST)
    ap.add_argument("-k", dest="keyword", help="only entries whose name contains this")
    ap.add_argument("-j", "--jobs", type=int, default=2, help="mutations run at once (each has its own databases)")
    ap.add_argument("--timeout", type=float, default=300, help="seconds per mutation's test run")
    ap.add_argument("--python", default=None, help="the interpreter with the test dependencies (default: .venv)")
    ap.add_argument("--list", action="store_true", help="check every entry applies; run no tests")
    ap.add_argument("--keep", action="store_true", help="keep the mutated copies (to debug an entry)")
    ap.add_argument(
        "--baseline-each",
        action="store_true",
        help="only check that each entry's tests pass unmutated when run on their own (no mutations)",
    )
    ap.add_argument(
        "--after-pytest",
        nargs=argparse.REMAINDER,
        default=None,
        metavar="PYTEST_ARGS",
        help="(scripts/test.sh) run only if these pytest arguments ran the whole suite",
    )
    args = ap.parse_args()
    if args.after_pytest is not None:
        if os.environ.get("SKIP_MUTATION_CHECK"):
            print("guard mutations: skipped (SKIP_MUTATION_CHECK is set)")
            return 0
        if selects_a_subset(args.after_pytest):
            print("guard mutations: skipped (pytest ran a subset of the tests)")
            return 0

    mutations = load(args.list_file)
    if args.keyword:
        mutations = [m for m in mutations if args.keyword in m.name]
        if not mutations:
            print(f"no entry matches {args.keyword!r}", file=sys.stderr)
            return 1
    # Every entry must apply to the tree as it is, before anything runs.
    problems = [p for m in mutations for p in problems_of(m, ROOT)]
    if problems:
        print("guard-mutation list out of date:", file=sys.stderr)
        for p in problems:
            print(f"  - {p}", file=sys.stderr)
        return 1
    if args.list:
        for m in mutations:
            print(f"{m.name:32} {m.file}  ->  {' '.join(m.tests)}")
        print(f"{len(mutations)} entries apply")
        return 0

    python = args.python or next(
        (str(p) for p in (ROOT / ".venv/bin/python", Path(sys.executable)) if p.exists()), sys.executable
    )
    files = working_tree_files(ROOT)
    started = time.monotonic()
    if args.baseline_each:
        alone = [Mutation(m.name, "its tests pass unmutated, on their own", "", "", "", m.tests) for m in mutations]
        with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
            results = list(pool.map(lambda m: run_one(m, python, files, args.timeout, keep=False), alone))
        for r in results:
            print(f"  {'passes' if r.verdict == 'SURVIVED' else 'FAILS':8} {r.mutation.name:32} {r.seconds:5.1f}s")
            if r.verdict != "SURVIVED":
                print("           " + (r.detail or "\n".join(r.failed)).replace("\n", "\n           "))
        return 0 if all(r.verdict == "SURVIVED" for r in results) else 1
    # First the listed tests on the tree as it is, in one run: a kill only means something if
    # they pass without the mutation (alone, not only after other tests).
    baseline = run_one(
        Mutation(
            "baseline", "the listed tests pass unmutated", "", "", "", sorted({t for m in mutations for t in m.tests})
        ),
        python,
        files,
        args.timeout,
        keep=False,
    )
    if baseline.verdict != "SURVIVED":
        print(f"guard mutations: the listed tests fail without any mutation ({baseline.verdict}):", file=sys.stderr)
        print("  " + (baseline.detail or "\n".join(baseline.failed)).replace("\n", "\n  "), file=sys.stderr)
        return 1
    print(
        f"guard mutations: the listed tests pass unmutated ({baseline.seconds:.0f}s); "
        f"{len(mutations)} entries, {args.jobs} at a time",
        flush=True,
    )
    outcomes: list[Outcome] = []
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for outcome in pool.map(lambda m: run_one(m, python, files, args.timeout, args.keep), mutations):
            outcomes.append(outcome)
            m = outcome.mutation
            print(f"  {outcome.verdict:8} {m.name:32} {outcome.seconds:5.1f}s  {m.invariant}", flush=True)
            for t in outcome.failed:
                print(f"           failed: {t}", flush=True)
            if not outcome.ok:
                print("           " + outcome.detail.replace("\n", "\n           "), flush=True)
    bad = [o for o in outcomes if not o.ok]
    killed, took = len(outcomes) - len(bad), time.monotonic() - started
    print(f"guard mutations: {killed}/{len(outcomes)} killed in {took:.0f}s", flush=True)
    if bad:
        print("FAILED: " + ", ".join(f"{o.mutation.name} ({o.verdict})" for o in bad), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
