"""The README's promise table: every promise of its "Guarantees" section names the tests that
fail if it breaks (``tests/test_x.py::test_name``), and each named test exists: the file is
there and defines that test function (read by AST, nothing imported). A row that names no
test, or a test that was renamed or removed, fails here with the row."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
SECTION = "## Guarantees"
HEADER = "| promise | the test that fails if it breaks |"
# One test reference: a file under tests/, then the test (``Class::test`` for a method).
TEST = re.compile(r"`(tests/[\w/]+\.py)::((?:\w+::)?\w+)`")
# What a test cell may hold besides its references: separators.
SEPARATORS = re.compile(r"[\s,;]+")


@dataclass(frozen=True)
class Promise:
    """One row of the table: its README line, the promise, the test references."""

    line: int
    text: str
    tests: list[tuple[str, str]]  # (path, test name)
    stray: str  # what the test cell holds besides references and separators


def promise_table(readme: str) -> list[Promise]:
    """The rows of the promise table in ``readme``'s Guarantees section (raises
    AssertionError if there is no such section or table)."""
    lines = readme.splitlines()
    starts = [n for n, line in enumerate(lines) if line.strip() == SECTION]
    assert len(starts) == 1, f"the README needs one {SECTION!r} section, found {len(starts)}"
    start = starts[0]
    end = next((n for n in range(start + 1, len(lines)) if lines[n].startswith("## ")), len(lines))
    headers = [n for n in range(start, end) if lines[n].strip() == HEADER]
    assert headers, f"no table headed {HEADER!r} in the README's {SECTION!r} section"
    rows: list[Promise] = []
    for n in range(headers[0] + 2, end):  # past the header and its |---|---| line
        line = lines[n].strip()
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        assert len(cells) == 2, f"README.md:{n + 1}: a row needs two cells: {line}"
        promise, tests = cells
        rows.append(
            Promise(
                line=n + 1,
                text=promise,
                tests=TEST.findall(tests),
                stray=SEPARATORS.sub(" ", TEST.sub("", tests)).strip(),
            )
        )
    return rows


def _defined(tree: ast.Module, name: str) -> bool:
    """Whether ``name`` (``test`` or ``Class::test``) is a test function of the module."""
    *owner, function = name.split("::")
    scope: list[ast.stmt] = tree.body
    if owner:
        classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == owner[0]]
        if not classes:
            return False
        scope = classes[0].body
    return function.startswith("test") and any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function
        for node in scope
    )


def problems(readme: str, root: Path) -> list[str]:
    """What is wrong with the promise table of ``readme`` (test paths relative to
    ``root``), each problem with the README line and the row's promise."""
    found: list[str] = []
    trees: dict[str, ast.Module | None] = {}
    for row in promise_table(readme):
        where = f"README.md:{row.line}: {row.text[:100]}"
        if not row.tests:
            found.append(f"{where}\n    names no test (write `tests/test_x.py::test_name`)")
        if row.stray:
            found.append(f"{where}\n    the test cell holds more than tests: {row.stray!r}")
        for path, name in row.tests:
            if path not in trees:
                file = root / path
                trees[path] = ast.parse(file.read_text(), path) if file.is_file() else None
            tree = trees[path]
            if tree is None:
                found.append(f"{where}\n    {path}: no such file")
            elif not _defined(tree, name):
                found.append(f"{where}\n    {path}::{name}: no such test in the file")
    return found


def test_every_promise_names_tests_that_exist() -> None:
    """Every row of the README's promise table names at least one test, and each exists."""
    readme = README.read_text()
    rows = promise_table(readme)
    assert len(rows) >= 20, f"the promise table has only {len(rows)} rows: was it cut?"
    found = problems(readme, ROOT)
    assert not found, "the README's promise table:\n" + "\n".join(found)


# The check itself, on small READMEs: each kind of broken row is caught.
GOOD = "`tests/test_promises.py::test_a_good_row_passes_and_is_read`"


def _readme(*rows: str) -> str:
    table = "\n".join(f"| {row} |" for row in rows)
    return f"# x\n\n{SECTION}\n\nIntro.\n\n{HEADER}\n|---|---|\n{table}\n\nProse.\n\n## Next\n"


def test_a_good_row_passes_and_is_read() -> None:
    text = _readme(f"**Nothing lost**: a lease runs out. | {GOOD}, {GOOD}")
    [row] = promise_table(text)
    assert row.line == 9 and row.text == "**Nothing lost**: a lease runs out."
    assert row.tests == [("tests/test_promises.py", "test_a_good_row_passes_and_is_read")] * 2
    assert problems(text, ROOT) == []


def test_a_row_without_a_test_fails_with_its_line_and_promise() -> None:
    text = _readme(f"Kept. | {GOOD}", "Nothing lost, said nobody. | ")
    assert problems(text, ROOT) == [
        "README.md:10: Nothing lost, said nobody.\n"
        "    names no test (write `tests/test_x.py::test_name`)"
    ]


def test_a_renamed_test_a_missing_file_and_a_helper_fail() -> None:
    text = _readme(
        "Renamed. | `tests/test_promises.py::test_a_good_row_passes`",
        "Gone. | `tests/test_no_such_module.py::test_x`",
        "A helper is not a test. | `tests/test_promises.py::promise_table`",
    )
    assert problems(text, ROOT) == [
        "README.md:9: Renamed.\n    tests/test_promises.py::test_a_good_row_passes:"
        " no such test in the file",
        "README.md:10: Gone.\n    tests/test_no_such_module.py: no such file",
        "README.md:11: A helper is not a test.\n"
        "    tests/test_promises.py::promise_table: no such test in the file",
    ]


def test_words_in_a_test_cell_instead_of_a_test_fail() -> None:
    """A cell reading "to do" or naming a test without the file is not a test."""
    text = _readme(f"Half. | {GOOD}, to do", "Bare. | test_a_good_row_passes_and_is_read")
    found = problems(text, ROOT)
    assert len(found) == 3
    assert "the test cell holds more than tests: 'to do'" in found[0]
    assert "README.md:10: Bare.\n    names no test" in found[1]


def test_a_guarantees_section_without_the_table_fails() -> None:
    text = f"# x\n\n{SECTION}\n\n- **Nothing lost.** A bullet, as before.\n\n## Next\n"
    with pytest.raises(AssertionError, match="no table headed"):
        promise_table(text)
