"""The README stays a newcomer's ten minutes, and the pages it maps stay whole: the configuration
reference is what the settings classes say, and no link points at a page or heading that is gone."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from core import reference

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MOST_LINES = 300

FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def prose(page: Path) -> str:
    """The page without code (a `[x](y)` inside code is not a link)."""
    return CODE.sub("", FENCE.sub("", page.read_text()))


def links(page: Path) -> list[str]:
    """The relative link targets of a page (not web addresses)."""
    return [t for t in LINK.findall(prose(page)) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def anchors(page: Path) -> set[str]:
    """GitHub's anchor of each heading: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.+)$", FENCE.sub("", page.read_text()), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def target(page: Path, link: str) -> tuple[Path, str]:
    """The file a link points to and the anchor within it ('' for none)."""
    path, _, anchor = link.partition("#")
    return ((page.parent / path).resolve() if path else page), anchor


def test_the_configuration_reference_is_generated_from_the_settings() -> None:
    page = DOCS / "configuration.md"
    assert page.exists() and page.read_text() == reference.render(), (
        "docs/configuration.md is not what core/settings.py says: run `make docs`"
    )


def test_the_readme_is_a_ten_minute_read() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MOST_LINES, f"README.md has {lines} lines (at most {MOST_LINES}): move detail into docs/"


@pytest.mark.parametrize("page", [README, *PAGES], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_what_exists(page: Path) -> None:
    broken = []
    for link in links(page):
        file, anchor = target(page, link)
        if not file.exists():
            broken.append(f"{link}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{link}: no such heading in {file.name}")
    assert not broken, f"{page.name}: {broken}"


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {target(README, link)[0] for link in links(README)}
    unlinked = [page.name for page in PAGES if page.resolve() not in linked]
    assert not unlinked, f"README.md's map of docs/ misses {unlinked}"


def test_every_password_or_key_setting_is_a_secret() -> None:
    named = [
        (cls.__name__, name, info)
        for cls in reference.settings_classes()
        for name, info in cls.model_fields.items()
        if "password" in name or name.endswith("_key")
    ]
    assert len(named) >= 4
    assert [(c, n) for c, n, info in named if not reference.is_secret(info)] == []
