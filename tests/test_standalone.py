"""A fresh clone is self-contained: nothing in the repository reads or cites files outside it.

Every tracked (or new, not ignored) text file is scanned for paths into the project's private
`shared` folder and for design notes that are not part of the repository; every `docs/<file>` it
cites must exist, and every section it cites ("kernel.md §4.4", "calibration.md §4.2", a bare
"§N" inside a document, "docs §N" in core/costs.py, which means docs/kernel.md) must be a heading
of that document. The forbidden names are assembled from pieces so that this file does not
contain them itself.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = "sha" + "red"
NOTES = tuple(name + ".md" for name in ("DES" + "IGN", "ST" + "YLE"))
# A path component with that name: a/<it>/b, ../<it>, or the quoted <it> of a Python path join.
SHARED_PATH = re.compile(rf"(?:^|[^\w-]){SHARED}/|['\"]{SHARED}['\"]")
DOCS_FILE = re.compile(r"(?<![\w/.-])docs/([\w.-]*\w)")
SECTION_LIST = r"((?:§\d+(?:\.\d+)?(?:,\s*)?)+)"
DOC_CITE = re.compile(r"([\w-]+)\.md`?\s+" + SECTION_LIST)  # "kernel.md §4.1, §9"
COSTS_CITE = re.compile(r"docs\s+" + SECTION_LIST)  # core/costs.py's "docs §5.5"
HEADING = re.compile(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", re.M)
SKIP_DIRS = {".git", ".venv", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache",
             ".hypothesis", "build", "dist"}


def repo_files() -> list[Path]:
    """Tracked and new (not ignored) files; without git (an unpacked sdist), every file."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout
        names = [name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
                 if p.is_file() and not SKIP_DIRS & set(p.relative_to(ROOT).parts)
                 and not any(part.endswith(".egg-info") for part in p.parts)]
    return [ROOT / name for name in sorted(names) if (ROOT / name).is_file()]


def text_files() -> dict[str, str]:
    """Path (relative to the repository) -> text, for every file that is UTF-8 text."""
    texts = {}
    for path in repo_files():
        data = path.read_bytes()
        if b"\0" in data:
            continue
        try:
            texts[path.relative_to(ROOT).as_posix()] = data.decode("utf-8")
        except UnicodeDecodeError:
            continue
    return texts


def sections(citations: str) -> list[str]:
    return re.findall(r"§(\d+(?:\.\d+)?)", citations)


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
    found = text_files()
    assert "README.md" in found and "tests/test_standalone.py" in found, sorted(found)[:20]
    return found


def test_the_patterns_catch_what_they_guard_against() -> None:
    """The guards themselves work (so that a pass below means something)."""
    assert SHARED_PATH.search(f"see ../{SHARED}/samples/x.txt")
    assert SHARED_PATH.search(f"`{SHARED}/reference/kernel-migrate-pages.md` §5")
    assert SHARED_PATH.search(f'parents[2] / "{SHARED}" / "samples"')
    assert not SHARED_PATH.search(f"helpers {SHARED} by the engine tests; the {SHARED} clock")
    assert [m[1] for m in DOCS_FILE.finditer("see docs/kernel.md. And docs/calibration.md")] == \
        ["kernel.md", "calibration.md"]
    assert not DOCS_FILE.search("https://example.org/docs/page.html")
    assert [(doc, sections(cited)) for doc, cited in DOC_CITE.findall(
        "docs/kernel.md §4.1, §9 and `calibration.md`\n§2")] == [("kernel", ["4.1", "9"]),
                                                                 ("calibration", ["2"])]
    assert HEADING.findall("## 4. Title\n### 4.1 Sub\n#### 4.1.1 no\n") == ["4", "4.1"]


def test_nothing_cites_files_outside_the_repository(texts: dict[str, str]) -> None:
    offences = []
    for name, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            if SHARED_PATH.search(line) or any(note in line for note in NOTES):
                offences.append(f"{name}:{number}: {line.strip()}")
    assert not offences, "\n".join(offences)


def test_every_cited_docs_file_exists(texts: dict[str, str]) -> None:
    cited = {(name, match[1]) for name, text in texts.items() for match in DOCS_FILE.finditer(text)}
    assert ("README.md", "calibration.md") in cited
    missing = sorted(f"{name} cites docs/{doc}" for name, doc in cited if not (ROOT / "docs" / doc).is_file())
    assert not missing, "\n".join(missing)


def test_every_cited_section_exists(texts: dict[str, str]) -> None:
    docs = {Path(name).stem: set(HEADING.findall(text)) for name, text in texts.items()
            if name.startswith("docs/") and name.endswith(".md")}
    assert {"1", "4.4", "9"} <= docs["kernel"] and {"4.1", "4.4"} <= docs["calibration"]
    cited: list[tuple[str, str, str]] = []  # (citing file, document, section)
    for name, text in texts.items():
        for doc, found in DOC_CITE.findall(text):
            if doc in docs:
                cited += [(name, doc, s) for s in sections(found)]
        if Path(name).parent.as_posix() == "docs" and Path(name).stem in docs:
            # A bare "§N" inside a document is one of its own sections.
            bare = DOC_CITE.sub("", text)
            cited += [(name, Path(name).stem, s) for s in sections(bare)]
    cited += [("core/costs.py", "kernel", s)
              for found in COSTS_CITE.findall(texts["core/costs.py"]) for s in sections(found)]
    assert {doc for _, doc, _ in cited} == {"kernel", "calibration"}
    unknown = sorted({f"{name} cites {doc}.md §{s}" for name, doc, s in cited if s not in docs[doc]})
    assert not unknown, "\n".join(unknown)
