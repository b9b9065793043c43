"""The book's sources are clean and consistent (fast: reads files, runs nothing).

- every notebook in book/ is committed without outputs, execution counts or saved widget state,
  has the kernelspec ``python3``, and starts with the hidden Colab set-up cell; the first cell a reader
  sees is the chapter's title;
- _toc.yml and book/ agree: every listed file exists and every chapter in book/ is listed;
- every ``{cite}`key``` in book/ is an entry of references.bib, whose keys are unique, and a
  ``{bibliography}`` directive exists so the citations resolve.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML comes with jupyter-book; install requirements.txt")

REPO = Path(__file__).resolve().parents[1]
BOOK = REPO / "book"
TOC = REPO / "_toc.yml"
BIB = REPO / "references.bib"
CHAPTER_SUFFIXES = (".md", ".ipynb")

NOTEBOOKS = sorted(BOOK.glob("*.ipynb"))
CHAPTERS = sorted(p for p in BOOK.iterdir() if p.suffix in CHAPTER_SUFFIXES) if BOOK.is_dir() else []


def _load_notebook(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        pytest.fail(f"{path.name} is not valid notebook JSON: {error}")


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _toc_files(node) -> list[str]:
    """Every ``file:`` (and ``root:``) entry of a jb-book toc, in order, at any nesting depth."""
    found: list[str] = []
    if isinstance(node, dict):
        for key in ("root", "file"):
            if isinstance(node.get(key), str):
                found.append(node[key])
        for value in node.values():
            if isinstance(value, (list, dict)):
                found += _toc_files(value)
    elif isinstance(node, list):
        for item in node:
            found += _toc_files(item)
    return found


def _resolve_toc_entry(entry: str) -> Path | None:
    base = REPO / entry
    if base.suffix in CHAPTER_SUFFIXES and base.is_file():
        return base
    for suffix in CHAPTER_SUFFIXES:
        if base.with_suffix(suffix).is_file():
            return base.with_suffix(suffix)
    return None


def test_book_has_chapters():
    assert CHAPTERS, f"no chapters (.md / .ipynb) found in {BOOK}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_is_clean(path: Path):
    nb = _load_notebook(path)
    assert nb.get("nbformat") == 4, f"{path.name}: nbformat {nb.get('nbformat')}, expected 4"
    kernelspec = nb.get("metadata", {}).get("kernelspec", {})
    assert kernelspec.get("name") == "python3", (
        f"{path.name}: kernelspec name {kernelspec.get('name')!r}, expected 'python3' (Colab and CI run that kernel)")
    dirty = []
    if "widgets" in nb.get("metadata", {}):
        dirty.append("saved widget state in the notebook metadata")
    for index, cell in enumerate(nb.get("cells", [])):
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            dirty.append(f"cell {index} has outputs")
        if cell.get("execution_count") is not None:
            dirty.append(f"cell {index} has execution_count {cell['execution_count']}")
        if "execution" in cell.get("metadata", {}):
            dirty.append(f"cell {index} has execution timestamps in its metadata")
    assert not dirty, (f"{path.name} must be committed clean: " + "; ".join(dirty)
                       + f". Clear them: jupyter nbconvert --clear-output --inplace book/{path.name}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_chapter_title_comes_first(path: Path):
    visible = [c for c in _load_notebook(path).get("cells", [])
               if "remove-cell" not in c.get("metadata", {}).get("tags", [])]
    assert visible and visible[0].get("cell_type") == "markdown" and _source(visible[0]).startswith("# "), (
        f"{path.name}: the first cell a reader sees must be the chapter's title (a markdown cell starting "
        "'# '), not code above it")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_starts_with_hidden_colab_setup(path: Path):
    cells = _load_notebook(path).get("cells", [])
    assert cells, f"{path.name} has no cells"
    first = cells[0]
    source = _source(first)
    assert first.get("cell_type") == "code", f"{path.name}: the first cell must be the Colab set-up code cell"
    assert "remove-cell" in first.get("metadata", {}).get("tags", []), (
        f"{path.name}: the Colab set-up cell must be tagged 'remove-cell' (metadata.tags) so the book hides it")
    for needed in ('find_spec("colorbook")', "git clone", "pip install"):
        assert needed in source, f"{path.name}: the first cell should be the Colab set-up cell; it lacks {needed!r}"
    code_cells = [_source(c) for c in cells if c.get("cell_type") == "code"]
    assert any("setup(" in s and "colorbook.notebook" in s for s in code_cells[1:3]), (
        f"{path.name}: the code cell after the set-up cell should call colorbook.notebook.setup()")


def test_toc_and_book_agree():
    assert TOC.is_file(), f"{TOC} is missing"
    toc = yaml.safe_load(TOC.read_text(encoding="utf-8"))
    assert toc.get("format") == "jb-book", f"_toc.yml format is {toc.get('format')!r}, expected jb-book"
    entries = _toc_files(toc)
    assert entries and entries[0] == toc.get("root"), "_toc.yml must have a root page"
    assert len(entries) == len(set(entries)), f"_toc.yml lists a file twice: {entries}"
    missing = [entry for entry in entries if _resolve_toc_entry(entry) is None]
    listed = {found.resolve() for entry in entries if (found := _resolve_toc_entry(entry)) is not None}
    unlisted = [p.name for p in CHAPTERS if p.resolve() not in listed]
    problems = []
    if missing:
        problems.append(f"_toc.yml lists files that do not exist (with .md or .ipynb): {missing}")
    if unlisted:
        problems.append(f"chapters in book/ that _toc.yml does not list (they would not be built): {unlisted}")
    assert not problems, "; ".join(problems)


def _bib_keys() -> list[str]:
    assert BIB.is_file(), f"{BIB} is missing"
    return re.findall(r"^\s*@\w+\s*\{\s*([^,\s]+)\s*,", BIB.read_text(encoding="utf-8"), flags=re.MULTILINE)


# {cite}`a`, {cite:p}`a,b`, {cite:t}`a`, {cite:ps}`a; b` ...
CITE = re.compile(r"\{cite(?::[a-z]+)?\}`([^`]+)`")


def _chapter_texts() -> dict[str, str]:
    texts = {}
    for path in CHAPTERS:
        if path.suffix == ".ipynb":
            texts[path.name] = "\n".join(_source(c) for c in _load_notebook(path).get("cells", []))
        else:
            texts[path.name] = path.read_text(encoding="utf-8")
    return texts


def test_bib_keys_are_unique():
    keys = _bib_keys()
    assert keys, "references.bib has no entries"
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    assert not duplicates, f"references.bib defines these keys more than once: {duplicates}"


def test_every_citation_is_in_references_bib():
    keys = set(_bib_keys())
    unknown = {}
    for name, text in _chapter_texts().items():
        for match in CITE.finditer(text):
            for key in re.split(r"[,;]", match.group(1)):
                key = key.strip()
                if key and key not in keys:
                    unknown.setdefault(name, []).append(key)
    assert not unknown, (f"citations of keys that references.bib lacks: {unknown}; "
                         "use a key from references.bib (list: the file's @entries)")


def test_bibliography_directive_exists():
    texts = _chapter_texts()
    assert any(re.search(r"^\s*[`:]{3,}\s*\{bibliography\}", t, flags=re.MULTILINE) for t in texts.values()), (
        "no {bibliography} directive in book/: citations would not resolve")


def test_build_ignores_folders_that_tools_write_into_the_repository():
    # `pytest` writes .pytest_cache/README.md; under `jupyter-book build -W` an unlisted page is an error
    import yaml
    config = yaml.safe_load((Path(__file__).resolve().parent.parent / "_config.yml").read_text())
    excluded = set(config["exclude_patterns"])
    assert {".pytest_cache", "runs", "results", "_build"} <= excluded


LITERALINCLUDE = re.compile(r"```\{literalinclude\} (\S+)\n:pyobject: ([\w.]+)")


def _shown_objects(path: Path) -> list[tuple[str, str, Path, object]]:
    """Every ``literalinclude`` with ``:pyobject:`` in a chapter: (file as written, object, resolved file,
    the object's AST node or ``None`` when the file or the object does not exist)."""
    import ast

    text = path.read_text()
    if path.suffix == ".ipynb":
        text = "\n".join("".join(cell["source"]) for cell in json.loads(text)["cells"])
    shown = []
    for relative, obj in LITERALINCLUDE.findall(text):
        source = (path.parent / relative).resolve()
        found = None
        if source.is_file():
            scope = ast.parse(source.read_text()).body
            for name in obj.split("."):
                found = next((node for node in scope if isinstance(node, (ast.FunctionDef, ast.ClassDef))
                              and node.name == name), None)
                if found is None:
                    break
                scope = found.body
        shown.append((relative, obj, source, found))
    return shown


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_every_literalinclude_shows_code_that_exists(path: Path):
    """The chapters show the package's code with `literalinclude` and `:pyobject:`; a moved or renamed
    function would leave an empty listing (the build only warns), so each target must exist."""
    missing = [f"{relative} (no such file)" if not source.is_file() else f"{relative} :pyobject: {obj}"
               for relative, obj, source, node in _shown_objects(path) if node is None]
    assert not missing, f"{path.name} shows code that does not exist: {missing}"


PAGE_WIDTH = 88  # characters of code the book's page shows without a scroll bar (black's and ruff's width)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_code_fits_the_page(path: Path):
    """Code cells, as the rendered page shows them, are at most 88 characters wide (nothing cut off)."""
    long = [(index, line) for index, cell in enumerate(_load_notebook(path).get("cells", []))
            if cell.get("cell_type") == "code" and "remove-cell" not in cell.get("metadata", {}).get("tags", [])
            for line in _source(cell).splitlines() if len(line) > PAGE_WIDTH]
    assert not long, (f"{path.name}: {len(long)} code lines over {PAGE_WIDTH} characters, e.g. cell {long[0][0]}: "
                      f"{long[0][1]!r}; run `ruff format --line-length {PAGE_WIDTH} book/{path.name}` and wrap "
                      "strings and comments by hand")


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_package_code_shown_in_the_book_fits_the_page(path: Path):
    """A ``literalinclude`` of the package's code shows it as written: those functions keep to 88 columns."""
    long = []
    for relative, _, source, node in _shown_objects(path):
        if node is None:
            continue  # reported by the test above
        lines = source.read_text().splitlines()
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        long += [f"{relative}:{number}" for number in range(first, node.end_lineno + 1)
                 if len(lines[number - 1]) > PAGE_WIDTH]
    assert not long, f"{path.name} shows package lines over {PAGE_WIDTH} characters: {long}"


CHAPTERS_WITH_EXERCISES = [p for p in NOTEBOOKS if p.name[:2].isdigit() and int(p.name[:2]) >= 1]


@pytest.mark.parametrize("path", CHAPTERS_WITH_EXERCISES, ids=[p.name for p in CHAPTERS_WITH_EXERCISES])
def test_chapter_ends_with_exercises(path: Path):
    """Every notebook chapter ends with exercises that say what to observe (d2l's format)."""
    markdown = [_source(c) for c in _load_notebook(path).get("cells", []) if c.get("cell_type") == "markdown"]
    heading = next((i for i, text in enumerate(markdown) if re.search(r"^## Exercises\s*$", text, re.M)), None)
    assert heading is not None, f"{path.name}: no '## Exercises' section"
    exercises = "\n".join(markdown[heading:])
    assert len(re.findall(r"^\d+\. ", exercises, re.M)) >= 3, f"{path.name}: fewer than 3 numbered exercises"
