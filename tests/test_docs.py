"""The documentation stands alone: nothing in the repository points outside it, and every relative
link of the README and docs/ leads to a file of the repository."""

import re
import subprocess

import pytest

from tests.jobs_support import ROOT

# Pages other engineers own, linked from the index before they land.
PAGES_ON_THEIR_WAY = {"docs/architecture.md", "docs/security.md"}
DOCS = ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))]


def tracked_files():
    listed = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=False)
    if listed.returncode != 0:
        pytest.skip("not a git checkout")
    return [name for name in listed.stdout.splitlines() if (ROOT / name).is_file()]


def test_no_file_refers_to_anything_outside_the_repository():
    outside = re.compile(r"\.\./shared|DESIGN\.md")
    this_file = "tests/test_docs.py"
    offenders = []
    for name in tracked_files():
        if name == this_file or name.endswith((".png", ".js", ".ico", ".woff2")):
            continue
        text = (ROOT / name).read_text(errors="ignore")
        offenders += [f"{name}:{n}" for n, line in enumerate(text.splitlines(), 1) if outside.search(line)]
    assert offenders == []


@pytest.mark.parametrize("page", DOCS)
def test_every_relative_link_leads_to_a_file(page):
    text = (ROOT / page).read_text()
    broken = []
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        resolved = ((ROOT / page).parent / target).resolve()
        name = str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(resolved)
        if not resolved.exists() and name not in PAGES_ON_THEIR_WAY:
            broken.append(target)
    assert broken == []


def test_the_index_lists_every_page_of_docs():
    index = (ROOT / "docs" / "README.md").read_text()
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"README.md"}
    assert {page for page in pages if f"({page})" not in index} == set()
