"""The programs some tests run that pip does not install (Chromium, nginx, Postfix,
SpamAssassin, and axe-core from npm), and the rule that CI never passes with one of them
missing.

A test that needs one says so with a marker: ``@pytest.mark.needs("chromium")``, or
``pytestmark = pytest.mark.needs("nginx")`` for a module. Where the program is missing, the
test is skipped before its fixtures start, with the reason and how to install it. Where
``CI`` is set (``.ci/run`` sets it), that skip fails the run instead, and so does any skip
of such a test while its program is missing, whatever raised it: a green CI run has run
every browser, nginx, Postfix and SpamAssassin test. ``DISTRIBUTOR_TEST_REQUIRE_<TOOL>``
asks the same of one program outside CI (``DISTRIBUTOR_TEST_REQUIRE_POSTFIX``, the name
tests/test_postfix.py had before, still works). Other skips stay allowed, such as the
file-mode test that needs root when not root (its nginx being there); the run ends by
listing them.

``DISTRIBUTOR_TEST_<TOOL>`` replaces a program's path for a run:
``CI=1 DISTRIBUTOR_TEST_CHROMIUM=/nonexistent pytest tests/test_admin_browser.py`` is CI on
a machine without a browser, and fails saying so.

tests/conftest.py loads this module as a plugin (``pytest_plugins``).
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import pytest

_OFF = {"", "0", "false", "no"}
ROOT = Path(__file__).resolve().parent.parent


def _is_set(name: str) -> bool:
    """Whether the environment variable ``name`` is set to something that means yes."""
    return os.environ.get(name, "").strip().lower() not in _OFF


def in_ci() -> bool:
    """Whether this run is a CI run (``CI`` set, as CI services and ``.ci/run`` set it)."""
    return _is_set("CI")


@dataclass(frozen=True)
class Tool:
    """A program some tests run: where Debian puts it, the package that brings it, and
    what else it needs to run here (root, a system user)."""

    name: str  # as the marker names it: @pytest.mark.needs("chromium")
    default: Path
    package: str  # Debian's
    root_because: str | None = None  # why it must run as root, if it must
    user: str | None = None  # a system user it runs as, which the package creates
    registry: str = "Debian"  # whose package it is
    how: str | None = None  # the command that installs it, if not `apt-get install PACKAGE`
    executable: bool = True  # a program; False for a file the tests read (axe.min.js)

    @property
    def env(self) -> str:
        """The environment variable that replaces its path."""
        return f"DISTRIBUTOR_TEST_{self.name.upper()}"

    @property
    def path(self) -> Path:
        """Where it is: ``DISTRIBUTOR_TEST_<TOOL>`` if set, else Debian's path."""
        return Path(os.environ.get(self.env) or self.default)

    @property
    def install(self) -> str:
        """How to get it, in one line."""
        if self.how:
            return f"install it with `{self.how}` (.ci/run does), or set {self.env} to its path"
        return (
            f"install it with `apt-get install {self.package}` (Debian; .ci/run does), "
            f"or set {self.env} to its path"
        )

    def missing(self) -> str | None:
        """Why it cannot run here, or None when it can."""
        if self.root_because and os.geteuid() != 0:
            return self.root_because
        path = self.path
        if not (path.is_file() and (not self.executable or os.access(path, os.X_OK))):
            return f"{path} is not installed ({self.registry} package `{self.package}`)"
        if self.user:
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                return f"no user {self.user!r} (Debian package `{self.package}` creates it)"
        return None

    def required_by(self) -> str | None:
        """The environment variable that makes a skip for want of it fail the run (``CI``,
        or ``DISTRIBUTOR_TEST_REQUIRE_<TOOL>``), or None where it may be skipped."""
        for name in ("CI", f"DISTRIBUTOR_TEST_REQUIRE_{self.name.upper()}"):
            if _is_set(name):
                return name
        return None


# `playwright install` needs the internet; the tests drive Debian's Chromium.
CHROMIUM = Tool("chromium", Path("/usr/bin/chromium"), "chromium")
NGINX = Tool("nginx", Path("/usr/sbin/nginx"), "nginx-light")
SPAMASSASSIN = Tool("spamassassin", Path("/usr/bin/spamassassin"), "spamassassin")
POSTFIX = Tool(
    "postfix",
    Path("/usr/sbin/postfix"),
    "postfix",
    root_because="a private Postfix must be started as root (its master runs as root)",
    user="postfix",
)
# axe-core, the accessibility engine tests/browser.py runs in every page it checks: pinned by
# tests/axe/package-lock.json, installed from the npm registry into tests/axe/node_modules.
AXE = Tool(
    "axe",
    ROOT / "tests" / "axe" / "node_modules" / "axe-core" / "axe.min.js",
    "axe-core",
    registry="npm",
    how="make axe",
    executable=False,
)
TOOLS = {tool.name: tool for tool in (CHROMIUM, NGINX, SPAMASSASSIN, POSTFIX, AXE)}

# What the run saw, for its closing summary: tool skips turned into failures, and the
# skips that stayed allowed (node id, reason).
_FAILED = pytest.StashKey[dict[str, list[str]]]()
_ALLOWED = pytest.StashKey[list[tuple[str, str]]]()


def _names(item: pytest.Item) -> list[str]:
    """The tool names ``item``'s ``needs`` markers give (its own, its class's, its module's)."""
    return list(
        dict.fromkeys(name for marker in item.iter_markers("needs") for name in marker.args)
    )


def needed(item: pytest.Item) -> list[Tool]:
    """The known tools ``item`` needs (a name no tool has fails the test at its setup)."""
    return [TOOLS[name] for name in _names(item) if name in TOOLS]


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_FAILED] = {}
    config.stash[_ALLOWED] = []


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    """Skip a test whose tool is missing, before its fixtures start anything."""
    unknown = [name for name in _names(item) if name not in TOOLS]
    if unknown:
        pytest.fail(
            f"@pytest.mark.needs({', '.join(map(repr, unknown))}): no such tool; "
            f"tests/tools.py knows {', '.join(TOOLS)}",
            pytrace=False,
        )
    for tool in needed(item):
        reason = tool.missing()
        if reason:
            pytest.skip(f"needs {tool.name}: {reason}; {tool.install}")


def _reason(report: pytest.TestReport) -> str:
    """The reason a skipped report gives."""
    if isinstance(report.longrepr, tuple):
        return str(report.longrepr[2]).removeprefix("Skipped: ")
    return str(report.longrepr)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A test skipped for want of a tool that is required (see :meth:`Tool.required_by`)
    fails instead, its message naming the tool, why it cannot run and how to install it.
    A skip with every tool there (the root-only test when not root) stays a skip, noted
    for the run's summary."""
    report = yield
    if not report.skipped or hasattr(report, "wasxfail"):
        return report
    reason = _reason(report)
    wanting = [tool for tool in needed(item) if tool.required_by() and tool.missing()]
    if not wanting:
        item.config.stash[_ALLOWED].append((item.nodeid, reason))
        return report
    lines = []
    for tool in wanting:
        lines.append(
            f"{tool.required_by()} is set, so a test that needs {tool.name} fails instead of "
            f"being skipped: {tool.missing()}; {tool.install}."
        )
        item.config.stash[_FAILED].setdefault(tool.name, []).append(item.nodeid)
    if not reason.startswith(f"needs {wanting[0].name}: "):  # a skip of its own: say it too
        lines.append(f"(The test skipped itself: {reason})")
    report.outcome = "failed"
    report.longrepr = "\n".join(lines)
    return report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Under CI: which tools were missing (with how to install each), and the skips that
    were allowed because they are not for want of a tool."""
    config = terminalreporter.config
    failed = config.stash.get(_FAILED, {})
    allowed = config.stash.get(_ALLOWED, [])
    if failed:
        terminalreporter.section("tests that could not run for want of a tool")
        for name, nodeids in failed.items():
            tool = TOOLS[name]
            terminalreporter.line(
                f"ERROR: {name}: {len(nodeids)} test(s) could not run: "
                f"{tool.missing() or 'skipped'}; {tool.install}"
            )
    if allowed and (in_ci() or failed):
        terminalreporter.section("skips allowed (not for want of a tool)")
        for nodeid, reason in allowed:
            terminalreporter.line(f"{nodeid}: {reason}")
