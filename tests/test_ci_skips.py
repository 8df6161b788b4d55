"""CI never passes with a silent skip (tests/tools.py): small pytest sessions, run by
pytester in a subprocess as CI would run them, with the tools' paths pointed elsewhere."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Six tests as the suite writes them: one needing a browser, one needing nginx and root,
# (the file-mode test), one needing Postfix, one that skips for another reason, one needing
# nginx that is "there", one that needs nothing.
SUITE = """
import os
import pytest


@pytest.mark.needs("chromium")
def test_browser():
    raise AssertionError("never reached without a browser")


@pytest.mark.skipif(os.environ.get("AS_ROOT") != "1", reason="switching to another user needs root")
@pytest.mark.needs("nginx")
def test_as_another_user():
    pass


@pytest.mark.needs("postfix")
def test_postfix():
    raise AssertionError("never reached without Postfix")


def test_not_on_this_platform():
    pytest.skip("only where the clock is monotonic")


@pytest.mark.needs("spamassassin")
def test_with_a_tool_that_is_there():
    assert os.environ["DISTRIBUTOR_TEST_SPAMASSASSIN"] == os.environ["PRESENT"]


def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A directory holding SUITE and the project's marker registration, loading tests.tools
    as tests/conftest.py does; no browser, no Postfix, no nginx; an "installed"
    SpamAssassin (any executable file); CI and every DISTRIBUTOR_TEST_REQUIRE_* unset."""
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeconftest('pytest_plugins = ["tests.tools"]\n')
    pytester.makeini(
        "[pytest]\nmarkers =\n    needs(tool): a program pip does not install\n"
        "filterwarnings = error\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")  # schemathesis & co: slow, unused
    for name in list(os.environ):
        if name in ("CI", "AS_ROOT") or name.startswith("DISTRIBUTOR_TEST_REQUIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DISTRIBUTOR_TEST_CHROMIUM", "/nonexistent/chromium")
    monkeypatch.setenv("DISTRIBUTOR_TEST_NGINX", "/nonexistent/nginx")
    monkeypatch.setenv("DISTRIBUTOR_TEST_POSTFIX", "/nonexistent/postfix")
    monkeypatch.setenv("DISTRIBUTOR_TEST_SPAMASSASSIN", sys.executable)
    monkeypatch.setenv("PRESENT", sys.executable)
    return pytester


def test_without_ci_a_missing_tool_is_a_skip_that_says_how_to_install_it(
    suite: pytest.Pytester,
) -> None:
    """On a developer's machine the run passes; the browser test is skipped before it runs,
    naming the path it looked at and the package; a tool that is there runs its test."""
    result = suite.runpytest_subprocess("-ra")
    result.assert_outcomes(passed=2, skipped=4)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["SKIPPED * needs chromium: /nonexistent/chromium is not installed (Debian package "
         "`chromium`); install it with `apt-get install chromium`*DISTRIBUTOR_TEST_CHROMIUM*"]
    )  # fmt: skip


def test_under_ci_a_missing_tool_fails_the_run_and_says_why(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With CI set, the browser, Postfix and nginx tests fail, each naming the tool, the
    path and how to install it, and the run exits 1; the skip for another reason stays a
    skip, listed at the end; the tool that is there runs its test."""
    monkeypatch.setenv("CI", "1")
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=2, skipped=1, errors=3)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "*ERROR at setup of test_browser*",
            "CI is set, so a test that needs chromium fails instead of being skipped: "
            "/nonexistent/chromium is not installed (Debian package `chromium`); "
            "install it with `apt-get install chromium`*",
        ]
    )
    out = result.stdout.str()
    assert "a test that needs postfix fails" in out and "apt-get install postfix" in out
    assert "a test that needs nginx fails" in out and "apt-get install nginx-light" in out
    result.stdout.fnmatch_lines(
        [
            "*tests that could not run for want of a tool*",
            "ERROR: chromium: 1 test(s) could not run: /nonexistent/chromium is not installed*",
            "*skips allowed (not for want of a tool)*",
            "test_suite.py::test_not_on_this_platform: only where the clock is monotonic",
        ]
    )


def test_under_ci_a_test_skipped_for_root_with_its_tool_there_stays_a_skip(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file-mode test when not root: it needs nginx, nginx is there, and it skips for
    want of root. That is not a tool missing: CI lists it and lets it pass."""
    monkeypatch.setenv("CI", "true")
    monkeypatch.setenv("DISTRIBUTOR_TEST_NGINX", sys.executable)
    result = suite.runpytest_subprocess("-k", "another_user or platform or plain")
    result.assert_outcomes(passed=1, skipped=2)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        [
            "*skips allowed (not for want of a tool)*",
            "test_suite.py::test_as_another_user: switching to another user needs root",
        ]
    )
    # Root, and nginx there: it runs.
    monkeypatch.setenv("AS_ROOT", "1")
    suite.runpytest_subprocess("-k", "another_user").assert_outcomes(passed=1)


def test_require_postfix_still_fails_only_a_postfix_skip(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``DISTRIBUTOR_TEST_REQUIRE_POSTFIX``, the variable tests/test_postfix.py read before
    (and .ci/run still sets), fails the Postfix test and no other."""
    monkeypatch.setenv("DISTRIBUTOR_TEST_REQUIRE_POSTFIX", "1")
    result = suite.runpytest_subprocess()
    result.assert_outcomes(passed=2, skipped=3, errors=1)
    result.stdout.fnmatch_lines(
        ["DISTRIBUTOR_TEST_REQUIRE_POSTFIX is set, so a test that needs postfix fails*"]
    )


def test_a_marker_naming_no_known_tool_fails(suite: pytest.Pytester) -> None:
    """A misspelt tool name cannot turn into a test that never needs anything."""
    suite.makepyfile(
        test_typo='import pytest\n\n@pytest.mark.needs("chromum")\ndef test_x():\n    pass\n'
    )
    result = suite.runpytest_subprocess("test_typo.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*needs('chromum'): no such tool; tests/tools.py knows*"])


AXE_SUITE = """
import pytest


@pytest.mark.needs("chromium", "axe")
def test_page():
    raise AssertionError("never reached without axe-core")
"""


def test_axe_core_missing_is_a_skip_saying_make_axe_and_under_ci_a_failure(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """axe-core is a file from the npm registry, not a Debian program: a browser test that
    needs it, with the browser there and axe.min.js not installed, is skipped saying to run
    `make axe`, and fails the run under CI."""
    suite.makepyfile(test_axe=AXE_SUITE)
    monkeypatch.setenv("DISTRIBUTOR_TEST_CHROMIUM", sys.executable)  # the browser is there
    monkeypatch.setenv("DISTRIBUTOR_TEST_AXE", "/nonexistent/axe.min.js")
    result = suite.runpytest_subprocess("-ra", "test_axe.py")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(
        ["SKIPPED * needs axe: /nonexistent/axe.min.js is not installed (npm package "
         "`axe-core`); install it with `make axe` (.ci/run does)*DISTRIBUTOR_TEST_AXE*"]
    )  # fmt: skip
    monkeypatch.setenv("CI", "1")
    result = suite.runpytest_subprocess("test_axe.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["CI is set, so a test that needs axe fails instead of being skipped: "
         "/nonexistent/axe.min.js is not installed (npm package `axe-core`); "
         "install it with `make axe`*"]
    )  # fmt: skip


def test_the_axe_check_itself_never_passes_silently_without_axe_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A page checked by a test that forgot its ``needs("axe")`` marker: without axe.min.js
    the check skips the test (saying how to install it), or fails it under CI; it never
    returns "no problem"."""
    from tests.browser import axe_problems

    for name in list(os.environ):
        if name == "CI" or name.startswith("DISTRIBUTOR_TEST_REQUIRE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("DISTRIBUTOR_TEST_AXE", "/nonexistent/axe.min.js")
    page = object()  # never reached: the check stops before it looks at the page
    with pytest.raises(pytest.skip.Exception, match=r"needs axe: .*`make axe`"):
        axe_problems(page)  # type: ignore[arg-type]
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="CI is set, so the axe check cannot be"):
        axe_problems(page)  # type: ignore[arg-type]
