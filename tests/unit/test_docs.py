"""The README and the docs/ pages work as one set on GitHub: every relative link and #anchor
resolves (the file exists and is not git-ignored; the anchor is one of GitHub's heading slugs),
the README stays a front page, and every docs page is reachable from it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from urllib.parse import unquote

import pytest

from mlci.review.comment import DOCS_HINT
from tests.helpers import REPO

README = REPO / "README.md"
DOCS = REPO / "docs"
MAKEFILE = REPO / "Makefile"
MAX_README_LINES = 250

FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
HEADING = re.compile(r"^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$")
CODE_SPAN = re.compile(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", re.S)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:\"[^\"]*\"|'[^']*'))?\s*\)")
REFERENCE = re.compile(r"^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?", re.M)
HTML_ATTR = re.compile(r"""\b(?:href|src)\s*=\s*["']([^"']+)["']""")
SCHEME = re.compile(r"^(?:[a-zA-Z][a-zA-Z0-9+.-]*:|//)")


def pages() -> list[Path]:
    """The README and the docs pages (docs/notes/ holds drafts, not pages)."""
    return [README, *sorted(DOCS.glob("*.md"))]


def outside_code(text: str) -> list[tuple[int, str]]:
    """Lines outside fenced code blocks, numbered from 1."""
    kept, fence = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence:
            closes = match and match.group(1)[0] == fence[0] and len(match.group(1)) >= len(fence)
            if closes and not match.group(2).strip():
                fence = ""
            continue
        if match and not (match.group(1)[0] == "`" and "`" in match.group(2)):
            fence = match.group(1)
            continue
        kept.append((number, line))
    return kept


def paragraphs(text: str) -> list[tuple[int, str]]:
    """Prose blocks (first line number, text) with code spans removed: a code span may run over
    several lines of one paragraph, never past a blank line."""
    blocks: list[tuple[int, list[str]]] = []
    last = -1
    for number, line in outside_code(text):
        if not line.strip():
            last = -1
            continue
        if last != number - 1:
            blocks.append((number, []))
        blocks[-1][1].append(line)
        last = number
    return [(start, CODE_SPAN.sub("", "\n".join(lines))) for start, lines in blocks]


def link_targets(text: str) -> list[tuple[int, str]]:
    """Every link, image, reference definition and HTML href/src target, with its line."""
    found = []
    for start, block in paragraphs(text):
        for pattern in (LINK, REFERENCE, HTML_ATTR):
            for match in pattern.finditer(block):
                line = start + block.count("\n", 0, match.start())
                found.append((line, match.start(), match.group(1)))
    return [(line, target) for line, _, target in sorted(found)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text lower-cased, every character but
    letters, digits, `_`, `-` and spaces dropped, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives a page's headings; a repeated slug gets -1, -2, ..."""
    seen: dict[str, int] = {}
    result = set()
    for _, line in outside_code(text):
        match = HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(1))
        count = seen.get(base, 0)
        result.add(base if count == 0 else f"{base}-{count}")
        seen[base] = count + 1
    return result


def resolve(page: Path, target: str) -> tuple[Path, str]:
    path, _, anchor = target.partition("#")
    return ((page.parent / unquote(path)).resolve() if path else page), unquote(anchor)


def broken_links(page: Path, root: Path) -> list[str]:
    """One line per link of `page` that would not work on GitHub."""
    broken = []
    for line, target in link_targets(page.read_text()):
        if SCHEME.match(target):
            continue
        where = f"{page.relative_to(root)}:{line}: {target}"
        dest, anchor = resolve(page, target)
        if target.startswith("/"):
            broken.append(f"{where}: absolute path (GitHub resolves it against github.com)")
        elif not dest.is_relative_to(root):
            broken.append(f"{where}: outside the repository")
        elif not dest.exists():
            broken.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest.read_text()):
            broken.append(f"{where}: no heading with the anchor #{anchor} in {dest.name}")
    return broken


def ignored(paths: list[Path], root: Path) -> list[Path]:
    """Those of `paths` git ignores (they exist here, never on GitHub); none outside a repo."""
    listed = "\n".join(str(p.relative_to(root)) for p in paths)
    run = subprocess.run(
        ["git", "check-ignore", "--stdin"],
        cwd=root,
        input=listed,
        capture_output=True,
        text=True,
        check=False,
    )
    if run.returncode not in (0, 1):
        pytest.skip(f"not a git checkout: {run.stderr.strip()}")
    return [root / line for line in run.stdout.splitlines()]


def test_the_readme_is_a_front_page() -> None:
    lines = len(README.read_text().splitlines())
    assert lines <= MAX_README_LINES, (
        f"README.md has {lines} lines (at most {MAX_README_LINES}): move detail to docs/"
    )


def test_every_relative_link_and_anchor_resolves() -> None:
    assert len(pages()) > 1, "no docs pages found"
    broken = [problem for page in pages() for problem in broken_links(page, REPO)]
    assert not broken, "broken links:\n" + "\n".join(broken)


def test_no_link_points_at_a_git_ignored_file() -> None:
    targets = {
        resolve(page, target)[0]
        for page in pages()
        for _, target in link_targets(page.read_text())
        if not SCHEME.match(target)
    }
    local = sorted(t for t in targets if t.is_relative_to(REPO) and t.exists())
    assert not ignored(local, REPO)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {resolve(README, t)[0] for _, t in link_targets(README.read_text())}
    missing = [p.relative_to(REPO) for p in pages()[1:] if p.resolve() not in linked]
    assert not missing, f"docs pages the README does not link: {missing}"


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("What `make run` produced, and where to look", "what-make-run-produced-and-where-to-look"),
        ("Thresholds (`params.yaml`, `monitor:`)", "thresholds-paramsyaml-monitor"),
        ("❌ Model gate FAILED", "-model-gate-failed"),
        ("How good is the detector?", "how-good-is-the-detector"),
        ("Pull-request comments", "pull-request-comments"),
        ("Pipeline (`make bench`)", "pipeline-make-bench"),
        ("snake_case and [a link](x.md)", "snake_case-and-a-link"),
    ],
)
def test_anchors_are_githubs_heading_slugs(heading: str, anchor: str) -> None:
    assert slug(heading) == anchor


def test_the_checker_reports_each_kind_of_broken_link(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.py").write_text("")
    (tmp_path / "docs" / "other.md").write_text("# Other\n\n## Part\n\n## Part\n")
    page = tmp_path / "docs" / "page.md"
    page.write_text(
        "# Page\n\n"
        "[ok](../src/a.py) [ok](other.md#part-1) [ok](#page) [ok](https://example.com/x)\n"
        "[gone](../src/b.py) and ![img](missing.png)\n\n"
        "[bad anchor](other.md#part-2) [bad self](#nowhere)\n"
        "[up](../../outside.md) [root](/src/a.py)\n\n"
        "`[in a span](nowhere.md)` and a span over\nlines: `[x](y.md)\n[z](w.md)`\n\n"
        "```md\n[in a fence](nowhere.md)\n```\n\n"
        '<a href="gone.html">html</a>\n\n[ref]: ../nope.md\n'
    )
    problems = broken_links(page, tmp_path)
    assert [p.split(": ")[1] for p in problems] == [
        "../src/b.py",
        "missing.png",
        "other.md#part-2",
        "#nowhere",
        "../../outside.md",
        "/src/a.py",
        "gone.html",
        "../nope.md",
    ]
    assert "no heading with the anchor #part-2 in other.md" in problems[2]
    assert problems[0].startswith("docs/page.md:4:")


def test_the_code_points_at_docs_pages_that_exist() -> None:
    """Error messages and comments name docs pages (e.g. the comment poster's hint): each page
    named exists, and the section the poster's hint names is one of its headings."""
    named = {
        (path.relative_to(REPO), page)
        for folder in ("src", ".github")
        for path in sorted((REPO / folder).rglob("*"))
        if path.suffix in (".py", ".yml", ".yaml")
        for page in re.findall(r"\bdocs/[\w-]+\.md\b", path.read_text())
    }
    named |= {
        (Path("Makefile"), p) for p in re.findall(r"\bdocs/[\w-]+\.md\b", MAKEFILE.read_text())
    }
    assert named, "no docs page named in src/, .github/ or the Makefile"
    missing = sorted(f"{where}: {page}" for where, page in named if not (REPO / page).is_file())
    assert not missing, "pages named but missing:\n" + "\n".join(missing)
    page, section = re.fullmatch(r'see (docs/[\w-]+\.md), "(.+)"', DOCS_HINT).groups()
    assert slug(section) in anchors((REPO / page).read_text())
