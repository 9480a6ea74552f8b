"""The documentation's relative links resolve: every `[text](path)` and `[text](path#anchor)` in
the README, docs/ and the folders' READMEs names a file that exists and, for a markdown file, a
heading that exists (GitHub's anchor for it). And the README stays short enough to read."""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from common.paths import ROOT

README_MAX_LINES = 200

DOCS = sorted({ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "result" / "README.md",
               ROOT / "benchmarks" / "README.md", ROOT / "webapp" / "README.md"})

FENCE = re.compile(r"^(```|~~~)")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.I)   # http:, https:, mailto:, ...


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced and indented code blocks, with HTML comments and inline code
    removed: only there are links and headings markdown."""
    text = re.sub(r"<!--.*?-->", "", text, flags=re.S)
    out, fenced, prev_blank = [], False, True
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            out.append("")
            continue
        indented_code = prev_blank and (line.startswith("    ") or line.startswith("\t"))
        if fenced or indented_code:
            out.append("")
            continue   # an indented block continues while its lines stay indented or blank
        prev_blank = not line.strip()
        out.append(re.sub(r"`[^`]*`", "", line) if "`" in line else line)
    return out


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: markup dropped, lower case, punctuation other than '-' and
    '_' removed, spaces turned into hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # links keep their text
    text = text.replace("`", "").replace("*", "")
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every heading's anchor in a markdown file, duplicates numbered as GitHub numbers them."""
    seen: dict[str, int] = {}
    found = set()
    text = re.sub(r"<!--.*?-->", "", path.read_text(), flags=re.S)
    fenced = False
    for line in text.splitlines():
        if FENCE.match(line.lstrip()):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            s = slug(m.group(2))
            n = seen.get(s, 0)
            found.add(s if n == 0 else f"{s}-{n}")
            seen[s] = n + 1
    return found


def links(path: Path) -> list[tuple[int, str]]:
    """(line number, target) of every link and image in a markdown file's prose."""
    return [(i, m.group(1)) for i, line in enumerate(prose_lines(path.read_text()), 1)
            for m in LINK.finditer(line)]


def broken(path: Path, root: Path = ROOT) -> list[str]:
    """What is wrong with each relative link of `path`, one line each, paths relative to `root`."""
    problems = []
    for line, target in links(path):
        if EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / unquote(file_part)).resolve() if file_part else path
        where = f"{path.relative_to(root)}:{line}: {target}"
        if not dest.exists():
            problems.append(f"{where}: no such file")
        elif anchor and dest.suffix == ".md" and anchor.lower() not in anchors(dest):
            problems.append(f"{where}: no heading with that anchor in {dest.relative_to(root)}")
    return problems


def test_slug_follows_github():
    assert slug("The recipe, and why") == "the-recipe-and-why"
    assert slug("Synthetic wild photos (`benchmarks/wild.py`)") == "synthetic-wild-photos-benchmarkswildpy"
    assert slug("The photo -> points path") == "the-photo---points-path"
    assert slug("Face detectors compared (2026-11-28)") == "face-detectors-compared-2026-11-28"


def test_the_checker_finds_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "a.md").write_text("# Top\n\n## Sub part\n")
    doc = tmp_path / "b.md"
    doc.write_text("[ok](a.md#sub-part) [ok](#here) ![x](missing.png)\n\n# Here\n\n"
                   "[bad](a.md#nope) `[code](nowhere.md)`\n\n```\n[fenced](nowhere.md)\n```\n"
                   "<!-- [comment](nowhere.md) --> [web](https://example.org/x.md)\n")
    assert broken(doc, root=tmp_path) == ["b.md:1: missing.png: no such file",
                        "b.md:5: a.md#nope: no heading with that anchor in a.md"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path):
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing"
    assert broken(path) == []


def test_docs_folder_pages_are_linked_from_the_readme():
    readme = {t.partition("#")[0] for _, t in links(ROOT / "README.md")}
    unlinked = [p.name for p in (ROOT / "docs").glob("*.md") if f"docs/{p.name}" not in readme]
    assert unlinked == []


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines, at most {README_MAX_LINES}"
