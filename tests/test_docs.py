"""README and docs/: every link and picture resolves, every benchmark named exists, README stays
short, and CI runs README's test command verbatim."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a Markdown file's headings."""
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


def test_every_link_and_picture_in_readme_and_docs_resolves():
    for doc in DOCS:
        for target in LINK.findall(doc.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (doc.parent / path).resolve() if path else doc
            assert resolved.exists(), f"{doc.name}: {target} does not exist"
            if anchor:
                assert anchor in anchors(resolved), f"{doc.name}: no heading for #{anchor} in {resolved.name}"


def test_every_benchmark_named_in_the_docs_exists_and_has_an_entry_in_docs_benchmarks():
    named = set()
    for doc in DOCS:
        named |= set(re.findall(r"\b([a-z_]+\.py)\b", doc.read_text()))
    benchmarks = {p.name for p in (ROOT / "benchmarks").glob("*.py")}
    listed = (ROOT / "docs" / "benchmarks.md").read_text()
    for name in benchmarks:
        assert f"### {name}" in listed, f"docs/benchmarks.md has no entry for {name}"
    assert not re.search(r"[A-Z_]{8,}\n", listed), "a placeholder is left in docs/benchmarks.md"
    for name in named:
        assert any(".venv" not in p.parts for p in ROOT.glob(f"**/{name}")), \
            f"{name} is named in the docs but exists nowhere"


def test_readme_is_short_and_ci_runs_its_test_command_verbatim():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 250
    command = "pip install -r requirements-test.txt && python -m pytest"
    assert f"\n{command}\n" in readme
    assert (ROOT / ".ci" / "run").read_text().rstrip().splitlines()[-1] == command
    assert not re.search(r"\bissue \d+", readme + "".join(d.read_text() for d in DOCS), re.IGNORECASE)
