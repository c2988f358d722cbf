"""docs/security.md's table of each principal's grants is the one `stack.acl` makes (it cannot drift),
and no principal is granted a wildcard."""

from __future__ import annotations

from pathlib import Path

from core.settings import TopicSettings
from stack import acl


def test_the_security_page_lists_exactly_the_grants_the_code_makes(
    repo: Path = Path(__file__).parents[2],
) -> None:
    page = (repo / "docs" / "security.md").read_text()
    block = page.split("<!-- acl:begin -->\n", 1)[1].split("\n<!-- acl:end -->", 1)[0]
    assert block == acl.table(TopicSettings()), "regenerate it: uv run python -m stack.acl"


def test_no_wildcard_grants() -> None:
    for service, granted in acl.grants(TopicSettings()).items():
        assert not [g for g in granted if g.name in ("*", "")], service
