"""Files stay where their names point: every package imports only what docs/architecture.md's picture
shows, each from a layer below its own, and the picture shows exactly what the code imports."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PICTURE = ROOT / "docs" / "architecture.md"


def picture() -> dict[str, tuple[str, ...]]:
    """package -> what it may import, in the picture's order (a layer sees only the lines above it)."""
    block = PICTURE.read_text().split("<!-- import picture", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    rows = (re.fullmatch(r"(\w+)\s*→\s*(.*)", line.strip()) for line in block.splitlines() if line.strip())
    return {m[1]: tuple(n.strip() for n in m[2].split(",") if n.strip()) for m in rows if m}


PACKAGES = tuple(picture())


def sources(package: str) -> list[Path]:
    return [ROOT / "demo.py"] if package == "demo" else sorted((ROOT / package).rglob("*.py"))


def project_imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.split(".")[0] in PACKAGES}


def test_every_package_is_in_the_picture() -> None:
    on_disk = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"demo", "tests", "bench"}
    assert on_disk - {".venv"} <= set(PACKAGES), f"not in {PICTURE.name}: {sorted(on_disk - set(PACKAGES))}"


def allows(allowed: str, name: str) -> bool:
    return name == allowed or name.startswith(f"{allowed}.")


@pytest.mark.parametrize("package", PACKAGES)
def test_package_imports_only_what_the_picture_shows(package: str) -> None:
    allowed = picture()[package]
    used = {
        (str(path.relative_to(ROOT)), name)
        for path in sources(package)
        for name in project_imports(path)
        if name.split(".")[0] != package
    }
    wrong = sorted(f"{path}: {name}" for path, name in used if not any(allows(a, name) for a in allowed))
    assert not wrong, f"{package} imports what {PICTURE.name} does not show: {wrong}"
    unused = sorted(a for a in allowed if not any(allows(a, name) for _, name in used))
    assert not unused, f"{PICTURE.name} shows {package} → {unused}, which it no longer imports"


def test_no_arrow_points_up() -> None:
    order = {package: i for i, package in enumerate(PACKAGES)}
    upward = [
        f"{package} → {name}"
        for package, allowed in picture().items()
        for name in allowed
        if order[name.split(".")[0]] >= order[package]
    ]
    assert not upward


def test_shared_modules_live_in_core() -> None:
    assert (ROOT / "core" / "lending_club.py").exists() and (ROOT / "kafka_producer" / "encode.py").exists()
    assert not (ROOT / "generator" / "lending_club.py").exists()
    assert not (ROOT / "kafka_producer" / "consume.py").exists()
    assert not (ROOT / "core" / "stack").exists(), "the local services live in stack/, above core"


def test_installing_prints_no_package_list() -> None:
    """A fresh clone's first target installs 166 packages: uv lists each unless told to be quiet (the
    first `make demo` printed 173 lines of it before its own)."""
    sync = [line for line in (ROOT / "Makefile").read_text().splitlines() if " sync " in line]
    assert sync and all("--quiet" in line for line in sync), sync
