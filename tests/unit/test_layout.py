"""Files stay where their names point: which project packages each package may import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "generator", "kafka_producer", "kafka_consumer", "sparky", "models", "serving", "demo")

# package -> project modules it may import besides its own (a prefix allows its submodules); core.stack
# runs the local stack and may read the settings of what it starts
ALLOWED = {
    "core": ("core",),
    "generator": ("core",),
    "kafka_consumer": ("core",),
    "kafka_producer": ("core", "generator"),
    "models": ("core", "generator.history"),  # training on synthetic history when no CSVs
}


def project_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def files(package: str) -> list[Path]:
    return [p for p in (ROOT / package).rglob("*.py") if "stack" not in p.relative_to(ROOT).parts]


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_what_it_may(package: str) -> None:
    allowed = (package, *ALLOWED[package])
    wrong = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in files(package)
        for name in project_imports(path)
        if not any(name == a or name.startswith(f"{a}.") for a in allowed)
    }
    assert not wrong, f"{package} reaches outside {allowed}: {sorted(wrong)}"


def test_shared_modules_live_in_core_and_nothing_imports_the_demo() -> None:
    importers = {
        str(path.relative_to(ROOT))
        for package in PACKAGES[:-1]
        for path in (ROOT / package).rglob("*.py")
        if any(n == "demo" or n.startswith("demo.") for n in project_imports(path))
    }
    assert not importers
    assert (ROOT / "core" / "lending_club.py").exists() and (ROOT / "kafka_producer" / "encode.py").exists()
    assert not (ROOT / "generator" / "lending_club.py").exists()
    assert not (ROOT / "kafka_producer" / "consume.py").exists()
