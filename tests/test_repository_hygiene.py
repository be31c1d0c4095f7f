"""The repository explains itself: no citation of files outside it, and a docs/ folder whose links resolve.

Code, configs and the README cite a paper or a page of docs/ (docs/README.md), never the developers'
private notes. The forbidden names are assembled at run time so that this file does not cite them either.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
FORBIDDEN = ("DES" + "IGN", "methods" + ".md", "ecosystem" + ".md")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked_files() -> list[Path]:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the tracked-file list is unavailable")
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / name for name in listing.decode().split("\0") if name]


def text_of(path: Path) -> str | None:
    """The file's text, or None for a binary file (NUL byte or not UTF-8) or a file missing from the tree."""
    try:
        data = path.read_bytes()
    except (FileNotFoundError, IsADirectoryError):
        return None
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def test_no_file_outside_docs_cites_the_private_notes() -> None:
    offenders = []
    for path in tracked_files():
        relative = path.relative_to(ROOT)
        if relative.parts[0] == "docs":
            continue
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), start=1):
            if any(name in line for name in FORBIDDEN):
                offenders.append(f"{relative}:{number}: {line.strip()}")
    assert not offenders, "cite a paper or a docs/ page instead:\n" + "\n".join(offenders)


def test_docs_folder_exists_and_the_readme_links_it() -> None:
    assert (DOCS / "README.md").is_file(), "docs/README.md (the index of the documentation) is missing"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = LINK.findall(readme)
    assert "docs/README.md" in targets, "README.md must link docs/README.md"
    assert sum(t.startswith("docs/") for t in targets) >= 2, "README.md should link the docs pages"


def md_links(page: Path) -> list[str]:
    """Relative links to markdown files in ``page``, anchors removed (external links skipped)."""
    out = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        target = target.split("#", 1)[0]
        if target.endswith(".md"):
            out.append(target)
    return out


def all_doc_links() -> list[tuple[str, str]]:
    pages = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    links = []
    for page in pages:
        if page.is_file():
            links += [(str(page.relative_to(ROOT)), target) for target in md_links(page)]
    return sorted(set(links))


@pytest.mark.parametrize(("source", "target"), all_doc_links(), ids=[f"{s}->{t}" for s, t in all_doc_links()])
def test_every_markdown_link_resolves(source: str, target: str) -> None:
    resolved = ((ROOT / source).parent / target).resolve()
    assert resolved.is_file(), f"{source} links {target}, which does not exist"


def test_the_docs_index_links_every_page() -> None:
    index = DOCS / "README.md"
    linked = {(DOCS / target).resolve().name for target in md_links(index)}
    pages = {page.name for page in DOCS.glob("*.md")} - {"README.md"}
    assert not pages - linked, f"docs/README.md does not link {sorted(pages - linked)}"
    expected = {
        "contracts.md",
        "evaluation.md",
        "adversarial_training.md",
        "tradeoff.md",
        "reweighting.md",
        "calibration.md",
        "mixed_classifier.md",
        "smoothing.md",
        "architecture.md",
    }
    assert expected <= linked, f"docs/README.md misses {sorted(expected - linked)}"


XFAIL = re.compile(r"xfail\((?P<args>[^)]*)\)")


def test_no_xfail_without_an_open_reason() -> None:
    """An expected failure hides a regression unless it is strict (a fix turns it red, so it is removed) and names
    the issue that keeps it open. A stale non-strict xfail once turned a deleted docs page into xfails."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        if path.resolve() == Path(__file__).resolve():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if "xfail" not in line:
                continue
            args = XFAIL.search(line)
            if args is None or "strict=True" not in args["args"] or not re.search(r"issue \d+", args["args"]):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not offenders, "xfail needs strict=True and a reason naming its open issue:\n" + "\n".join(offenders)
