"""Reading the deployment files the way Docker and Dokku do (shared by the tests/deploy tests)."""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path

from shared import fleet

ROOT = Path(__file__).resolve().parents[2]
SERVICES = fleet.names()


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs: comments dropped, line continuations joined."""
    lines, current = [], ""
    for raw in path.read_text().splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") and not current:
            continue
        if stripped.startswith("#"):
            continue  # a comment inside a continuation is removed by Docker too
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def copy_sources(path: Path) -> list[tuple[list[str], str]]:
    """Sources and destination of every COPY/ADD from the build context (not --from stages)."""
    result = []
    for word, rest in dockerfile_instructions(path):
        if word not in {"COPY", "ADD"}:
            continue
        parts = shlex.split(rest)
        if any(p.startswith("--from") for p in parts):
            continue
        parts = [p for p in parts if not p.startswith("--")]
        result.append((parts[:-1], parts[-1]))
    return result


def procfile(service: str) -> dict[str, str]:
    entries = {}
    for line in (ROOT / f"{service}_service" / "Procfile").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, command = line.partition(":")
            entries[name.strip()] = command.strip()
    return entries


def app_json(service: str) -> dict:
    return json.loads((ROOT / f"{service}_service" / "app.json").read_text())


def requirement_pins(path: Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*==\s*([^\s;]+)", line)
        assert match, f"{path.relative_to(ROOT)}: '{line}' is not pinned with =="
        name = normalize(match.group(1))
        assert name not in pins, f"{path.relative_to(ROOT)}: {name} is listed twice"
        pins[name] = match.group(3)
    return pins


def pyproject_pins() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = {}
    for spec in data["project"]["dependencies"]:
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==(\S+)", spec)
        if match:
            pins[normalize(match.group(1))] = match.group(3)
    return pins


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_extras(path: Path) -> dict[str, set[str]]:
    """Each pinned distribution of a requirements file and the extras it asks for."""
    from packaging.requirements import Requirement

    extras = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            extras[normalize(requirement.name)] = set(requirement.extras)
    return extras


def installed_closure(wanted: dict[str, set[str]]) -> dict[str, str]:
    """The given distributions (with their extras) and everything they need, transitively, per the
    metadata of this environment (the one the tests run in): name -> installed version."""
    from importlib import metadata

    from packaging.requirements import Requirement

    versions: dict[str, str] = {}
    extras = {name: set(e) for name, e in wanted.items()}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in versions:
            continue
        dist = metadata.distribution(name)
        versions[name] = dist.version
        for spec in dist.requires or []:
            requirement = Requirement(spec)
            active = extras.get(name, set()) | {""}
            if requirement.marker and not any(requirement.marker.evaluate({"extra": e}) for e in active):
                continue
            dep = normalize(requirement.name)
            if requirement.extras - extras.get(dep, set()):
                extras.setdefault(dep, set()).update(requirement.extras)
                versions.pop(dep, None)  # revisit it with the extra
            todo.append(dep)
    return versions


def third_party_imports(*packages: str) -> dict[str, set[str]]:
    """Top-level modules imported by the packages' runtime code (tests' helpers under
    shared/testing excluded) that are neither the standard library nor ours: module -> files."""
    import ast
    import sys

    ours = {"shared", "sandbox"} | {f"{s}_service" for s in SERVICES}
    found: dict[str, set[str]] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.is_relative_to(ROOT / "shared" / "testing"):
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in sys.stdlib_module_names and top not in ours and not top.endswith("_service"):
                        found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found
