"""The documentation: every reference resolves inside the repository, and every page's code runs.

- Every ``docs/NAME.md`` cited in the code (optionally with ``#anchor`` or a quoted
  section name after it) is a file of ``docs/`` with that heading.
- Every relative link in ``README.md``, ``docs/*.md`` and ``benchmarks/README.md`` reaches a
  file and heading.
- Every result of the paper that the code names ("Theorem 2", "Definition 5") is
  listed in ``docs/README.md``, which says where it is stated.
- No file cites pages that are not in the repository (``MATH.md``, ``DRIFT.md``).
- Every ``python`` code block of those pages runs as written, each in a fresh
  namespace. A block preceded by ``<!-- not-run: REASON -->`` is skipped with
  that reason.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
CODE_DIRS = ("ntkdepth", "experiments", "benchmarks", "tests")
THIS_FILE = Path(__file__).resolve()

# Result numbers of other works named in the code, with the work they belong to.
EXTERNAL_RESULTS = {
    "Lemma 12": "Cai, Fan & Jiang (2013), the density of the angle between random points",
}


def _code_files() -> list[Path]:
    files = []
    for d in CODE_DIRS:
        for ext in ("*.py", "*.sh", "*.toml"):
            files.extend((ROOT / d).rglob(ext))
    files.extend((ROOT / "configs").rglob("*.toml"))
    return sorted(f for f in set(files) if f.resolve() != THIS_FILE and ".venv" not in f.parts)


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md"] + sorted(DOCS.glob("*.md")) + [ROOT / "benchmarks" / "README.md"]


def slugify(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = unicodedata.normalize("NFKC", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _strip_fences(text: str) -> str:
    """The Markdown text outside fenced code blocks (whose '#' lines are not headings)."""
    out, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            out.append(line)
    return "\n".join(out)


def headings(path: Path) -> dict[str, str]:
    """``{anchor: heading text}`` for every Markdown heading of ``path``."""
    found = {}
    for line in _strip_fences(path.read_text(encoding="utf-8")).splitlines():
        m = re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if m:
            anchor = slugify(m.group(2))
            k, base = 1, anchor
            while anchor in found:  # GitHub numbers repeated headings
                anchor, k = f"{base}-{k}", k + 1
            found[anchor] = m.group(2)
    return found


# docs/NAME.md, then optionally #anchor, or a quoted section name after a comma
# (``docs/drift.md``, section "Depth 3").
_DOC_REF = re.compile(
    r"docs/(?P<file>[\w.-]+\.md)(?:#(?P<anchor>[\w-]+))?"
    r"(?:`{0,2},?\s*(?:section\s+)?[\"'](?P<name>[^\"'\n]+)[\"'])?"
)


def _check_reference(file: str, anchor: str | None, name: str | None) -> str | None:
    """``None`` if the reference resolves, else what is wrong."""
    target = DOCS / file
    if not target.is_file():
        return f"docs/{file} does not exist"
    heads = headings(target)
    if anchor and anchor not in heads:
        return f"docs/{file} has no heading with anchor #{anchor}"
    if name and name not in heads.values() and slugify(name) not in heads:
        return f"docs/{file} has no heading {name!r}"
    return None


def _line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, pos) + 1


def test_slugify_matches_github():
    assert slugify("One-hot inputs (Table 1)") == "one-hot-inputs-table-1"
    assert slugify("Per-unit statistics (last hidden layer)") == "per-unit-statistics-last-hidden-layer"
    assert slugify("The recursion") == "the-recursion"
    heads = headings(DOCS / "drift.md")
    assert "depth-3" in heads and "one-hot-inputs-table-1" in heads


def test_docs_references_in_code_resolve():
    bad, seen = [], 0
    for path in _code_files() + [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for m in _DOC_REF.finditer(text):
            seen += 1
            problem = _check_reference(m.group("file"), m.group("anchor"), m.group("name"))
            if problem:
                bad.append(f"{path.relative_to(ROOT)}:{_line_of(text, m.start())}: {problem}")
    assert seen > 0, "no docs/ reference found at all: the pattern is broken"
    assert not bad, "references that do not resolve:\n" + "\n".join(bad)


def test_docs_reference_checker_catches_bad_references():
    assert _check_reference("drift.md", "depth-3", None) is None
    assert _check_reference("drift.md", None, "Depth 3") is None
    assert _check_reference("drift.md", "no-such-heading", None)
    assert _check_reference("no-such-page.md", None, None)
    m = _DOC_REF.search('see ``docs/drift.md``,\n    section "Depth 4").')
    assert m and m.group("name") == "Depth 4"
    assert _check_reference(m.group("file"), m.group("anchor"), m.group("name"))


_LINK = re.compile(r"\[[^\]]*\]\((?P<target>[^)\s]+)\)")


def test_markdown_links_resolve():
    bad = []
    for path in _markdown_files():
        text = _strip_fences(path.read_text(encoding="utf-8"))
        for m in _LINK.finditer(text):
            target = m.group("target")
            if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
                continue
            file, _, anchor = target.partition("#")
            dest = (path.parent / file).resolve() if file else path
            where = f"{path.relative_to(ROOT)}: ({target})"
            if not dest.exists():
                bad.append(f"{where}: no such file")
            elif anchor and (dest.suffix != ".md" or anchor not in headings(dest)):
                bad.append(f"{where}: no heading #{anchor}")
    assert not bad, "broken links:\n" + "\n".join(bad)


_RESULT = re.compile(
    r"\b(Theorem|Lemma|Corollary|Proposition|Definition|Remark|Example)s?\s+(\d+)"
)


def test_every_cited_paper_result_is_stated_in_docs():
    index = (DOCS / "README.md").read_text(encoding="utf-8")
    listed = {f"{kind} {num}" for kind, num in re.findall(r"^\| (\w+) (\d+) \|", index, re.M)}
    assert {"Theorem 2", "Definition 4", "Proposition 7"} <= listed
    missing = {}
    for path in _code_files() + [ROOT / "README.md", ROOT / "benchmarks" / "README.md"]:
        text = path.read_text(encoding="utf-8")
        for m in _RESULT.finditer(text):
            key = f"{m.group(1)} {m.group(2)}"
            if key not in listed and key not in EXTERNAL_RESULTS:
                missing.setdefault(key, f"{path.relative_to(ROOT)}:{_line_of(text, m.start())}")
    assert not missing, (
        "results named in the code but not mapped in docs/README.md: "
        + ", ".join(f"{k} ({v})" for k, v in sorted(missing.items()))
    )


_OUTSIDE = re.compile(r"\b(MATH|DRIFT)\.md\b")


def _outside_references(paths) -> list[str]:
    out = []
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for m in _OUTSIDE.finditer(text):
            out.append(f"{path.relative_to(ROOT)}:{_line_of(text, m.start())}: {m.group(0)}")
    return out


def test_docs_cite_nothing_outside_the_repository():
    found = _outside_references(_markdown_files())
    assert not found, "pages outside the repository cited in the docs:\n" + "\n".join(found)


def test_code_cites_nothing_outside_the_repository():
    found = _outside_references(_code_files())
    assert not found, "pages outside the repository cited in the code:\n" + "\n".join(found)


# --------------------------------------------------------------------------
# The pages' code blocks.

# A fenced block, possibly indented inside a list item (closed at the same indentation).
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>[\w+-]*)[ \t]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    re.M | re.S,
)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(?P<reason>.*?)\s*-->\s*$")


def python_blocks(path: Path) -> list[tuple[int, str, str | None]]:
    """``(line, code, reason_not_run)`` for every ``python`` block of the Markdown page ``path``."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        if m.group("lang") not in ("python", "py"):
            continue
        before = text[: m.start()].rstrip().splitlines()
        note = _NOT_RUN.search(before[-1]) if before else None
        # The fence may be indented inside a list item: dedent by the first line.
        lines = m.group("body").splitlines()
        indent = min((len(s) - len(s.lstrip()) for s in lines if s.strip()), default=0)
        code = "\n".join(s[indent:] for s in lines)
        blocks.append((_line_of(text, m.start()), code, note.group("reason") if note else None))
    return blocks


_BLOCKS = [(str(path.relative_to(ROOT)), *block) for path in _markdown_files() for block in python_blocks(path)]


def test_block_finder_reads_indented_blocks_and_not_run_markers(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("text\n\n- item:\n\n  ```python\n  x = 1\n    y = 2\n  ```\n\n"
                    "<!-- not-run: needs a cluster -->\n```py\nz = 3\n```\n\n```sh\nls\n```\n")
    assert python_blocks(page) == [(5, "x = 1\n  y = 2", None), (11, "z = 3", "needs a cluster")]


def test_readme_and_guides_have_python_blocks():
    pages = {page for page, *_ in _BLOCKS}
    assert {"README.md", "docs/library.md", "docs/distributed.md", "docs/contributing.md"} <= pages


@pytest.mark.parametrize("page,line,code,reason", _BLOCKS, ids=[f"{b[0]}:{b[1]}" for b in _BLOCKS])
def test_page_block_runs(page, line, code, reason, tmp_path, monkeypatch):
    if reason is not None:
        pytest.skip(f"{page}:{line} is marked not-run: {reason}")
    monkeypatch.chdir(tmp_path)  # whatever a snippet writes stays out of the checkout
    namespace = {"__name__": "__docs__"}
    try:
        exec(compile(code, f"{page}:{line}", "exec", dont_inherit=True), namespace)
    except NameError as err:
        pytest.fail(f"{page}:{line}: the snippet uses an undefined name: {err}")
