"""Each image installs only its service's requirements.txt (see its Dockerfile), so that file must
be the whole, pinned set the service runs with: what it imports, everything those need, at the
versions this test environment (built from pyproject.toml's pins) runs. Otherwise the image
resolves something else than what was tested, and the first to notice is the production build.
(Top-level pins equal to pyproject.toml's: test_images.py.)"""

from __future__ import annotations

from importlib import metadata

import pytest

from tests.deploy.images import (
    ROOT,
    SERVICES,
    installed_closure,
    normalize,
    pyproject_pins,
    requirement_extras,
    requirement_pins,
    third_party_imports,
)

SHARED_REQUIREMENTS = ROOT / "shared" / "requirements.txt"


def service_requirements(service: str):
    return ROOT / f"{service}_service" / "requirements.txt"


@pytest.mark.parametrize("service", SERVICES)
def test_requirements_lock_everything_at_the_tested_versions(service):
    path = service_requirements(service)
    pins = requirement_pins(path)
    closure = installed_closure(requirement_extras(path))
    unlisted = {name: version for name, version in closure.items() if name not in pins}
    assert not unlisted, f"{path.relative_to(ROOT)} leaves these to pip's resolution; add:\n" + "\n".join(
        f"{name}=={version}" for name, version in sorted(unlisted.items())
    )
    drift = {name: (pin, closure[name]) for name, pin in pins.items() if closure[name] != pin}
    assert not drift, f"{path.relative_to(ROOT)} pins other versions than the tests run (pinned, tested): {drift}"


@pytest.mark.parametrize("service", SERVICES)
def test_requirements_cover_what_the_service_imports(service):
    path = service_requirements(service)
    installed = set(installed_closure(requirement_extras(path)))
    providers = metadata.packages_distributions()
    uncovered = {}
    for module, files in third_party_imports("shared", f"{service}_service").items():
        dists = {normalize(d) for d in providers.get(module, [])}
        if not dists & installed:
            uncovered[module] = (sorted(dists) or ["not installed here either"], sorted(files)[:3])
    assert not uncovered, f"{path.relative_to(ROOT)} installs nothing providing (module: dists, files): {uncovered}"


def test_the_shared_layer_is_part_of_every_service_set():
    """Every Dockerfile installs shared/requirements.txt first (one layer, identical in all seven
    images, so built and stored once per host), then the service's own file."""
    shared = requirement_pins(SHARED_REQUIREMENTS)
    expected = pyproject_pins()
    assert {n: v for n, v in shared.items() if n in expected and expected[n] != v} == {}
    assert set(installed_closure(requirement_extras(SHARED_REQUIREMENTS))) == set(shared), "shared set not closed"
    for service in SERVICES:
        pins = requirement_pins(service_requirements(service))
        differs = {n: (v, pins.get(n)) for n, v in shared.items() if pins.get(n) != v}
        assert not differs, f"{service}_service/requirements.txt lacks or changes shared/'s pins: {differs}"
        dockerfile = (ROOT / f"{service}_service" / "Dockerfile").read_text()
        assert dockerfile.index("shared/requirements.txt") < dockerfile.index(f"{service}_service/requirements.txt")


def test_the_checks_catch_drift(tmp_path):
    """The checks above fail on a missing transitive pin and on a version the tests do not run."""
    path = tmp_path / "requirements.txt"
    path.write_text("fastapi==0.165.0\n")
    closure = installed_closure(requirement_extras(path))
    assert {"starlette", "pydantic", "pydantic-core"} <= set(closure) - set(requirement_pins(path))
    path.write_text("uvicorn[standard]==0.54.0\n")
    assert "uvloop" in installed_closure(requirement_extras(path)), "extras are followed"
    assert "uvloop" not in installed_closure({"uvicorn": set()})
