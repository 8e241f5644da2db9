"""The documentation holds together: the README stays short, and every link in it and in docs/ leads
to a file of this repository."""

from __future__ import annotations

import re

from tests.support import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_stays_a_users_page_of_at_most_12_kb():
    assert (ROOT / "README.md").stat().st_size <= 12 * 1024


def test_every_relative_link_leads_to_a_file_in_the_repository():
    broken = []
    for page in PAGES:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z]+:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or ROOT not in path.parents:
                broken.append(f"{page.relative_to(ROOT)} → {target}")
    assert not broken, broken


def test_the_readme_links_every_page_of_docs():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    linked = {(ROOT / target.split("#", 1)[0]).resolve() for target in LINK.findall(readme)}
    missing = [str(page.relative_to(ROOT)) for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, missing
