"""The suite's own layout (issue 12, "helpers in one place"): a helper lives in one module,
and test modules never import from each other. A test module that imports another runs its
fixtures and module-level setup in the wrong place, and a copied helper drifts away from
the original (``free_port`` was defined three times, ``csrf_of`` and ``new_token`` twice).
Shared pieces belong in tests/helpers.py or a tests/ module named for what it holds
(clients.py, corrections.py, fuzzing.py, ...). Read with ``ast``: nothing is imported."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parent

# Module-level functions and classes whose name more than one tests/ module uses for a
# different thing; each is local to its modules, none is a copy of another. A new entry
# needs a reason; a name found in fewer than two modules fails the test (stale entry).
UNRELATED_SAME_NAMES = {
    "_tail": "nginx_conf reads nginx's error log, postfix a Postfix instance's log",
    "main": "the entry point of each script (mutation_summary, postfix_samples)",
    "ledger": "test_reconcile maps address to (status, error), test_smtputf8 adds the "
    "subscriber's status",
    "message": "postfix_samples builds one per Message-ID, test_mail_transport numbered ones",
    "parse": "a DSN (compat32, for the bounce parser), a feed (feedparser), and a message "
    "with policy.default in test_deliverability and test_readme (no defect check, unlike "
    "mail_samples.parse_email)",
    "parsed": "test_newsroom: an HTML page, checked; test_smtputf8: a received message",
    "reader": "three different Recipients (deliverability, DKIM and media samples)",
    "release": "test_fuzz_releases: release text; page_samples: a detached Release",
    "Served": "test_request_bodies: a server's port and pid (its memory); "
    "test_oversized_bodies: its URL, a poster and counters",
    "run_confirmations": "test_api: through Api's queue; test_subscribe_web: concurrently",
    "run_import": "test_fuzz_csv checks every outcome; test_subscribers returns the report",
    "sample_release": "three different samples (deliverability, deployment, DKIM)",
    "subscriber": "test_bounces: must exist; test_subscribe_web: may be missing",
    "subscriber_id": "test_api: through the API; test_correction_notify: through a session",
}


def _modules() -> dict[str, ast.Module]:
    """Every Python module under tests/ (its name without .py) and its syntax tree."""
    return {
        path.relative_to(TESTS).with_suffix("").as_posix().replace("/", "."): ast.parse(
            path.read_text(), str(path)
        )
        for path in sorted(TESTS.rglob("*.py"))
    }


def _imported(tree: ast.Module) -> set[str]:
    """The last part of every module name ``tree`` imports, anywhere in it (functions too):
    ``tests.test_x`` and ``from tests import test_x`` both give ``test_x``."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.rsplit(".", 1)[-1] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.module:
                found.add(node.module.rsplit(".", 1)[-1])
            if node.module in (None, "tests"):  # from tests import test_x; from . import x
                found |= {alias.name for alias in node.names}
    return found


def _is_fixture(node: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any("fixture" in ast.unparse(d) for d in node.decorator_list)


def _helpers(tree: ast.Module) -> set[str]:
    """The module-level functions and classes of ``tree`` that are neither tests, fixtures
    nor pytest hooks (a fixture or a hook is looked up by name, per module or plugin: the
    same name is how pytest finds each)."""
    names = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) or (
            isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and not node.name.startswith(("test_", "pytest_"))
            and not _is_fixture(node)
        ):
            names.add(node.name)
    return names


def test_no_test_module_imports_another() -> None:
    modules = _modules()
    test_modules = {name for name in modules if name.startswith("test_")}
    found = {
        (name, other)
        for name, tree in modules.items()
        for other in _imported(tree) & test_modules
        if other != name
    }
    assert found == set(), "move what they share into tests/helpers.py"


def test_each_helper_is_defined_once() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for name, tree in _modules().items():
        for helper in _helpers(tree):
            where[helper].append(name)
    repeated = {helper: names for helper, names in where.items() if len(names) > 1}
    copies = {h: names for h, names in repeated.items() if h not in UNRELATED_SAME_NAMES}
    assert copies == {}, "define each once (tests/helpers.py) and import it"
    stale = set(UNRELATED_SAME_NAMES) - set(repeated)
    assert stale == set(), f"stale UNRELATED_SAME_NAMES entries: {stale}"


def test_the_layout_checks_see_what_they_look_for() -> None:
    """The checks above find what they look for: a module that imports a test module, in
    each form, and a helper defined twice (so an empty finding means there is none)."""
    forms = ["import tests.test_x", "from tests import test_x", "from tests.test_x import f",
             "def f():\n    from tests.test_x import g"]  # fmt: skip
    for source in forms:
        assert "test_x" in _imported(ast.parse(source)), source
    tree = ast.parse(
        "import pytest\ndef free_port(): ...\nclass Api: ...\ndef test_a(): ...\n"
        "@pytest.fixture\ndef web(): ...\n"
    )
    assert _helpers(tree) == {"free_port", "Api"}
    assert {"free_port", "csrf_of", "new_token", "CountingQueue"} <= _helpers(_modules()["helpers"])
