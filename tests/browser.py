"""A real browser for journey tests: Debian's headless Chromium driven by Playwright (the web
app they visit: tests/web_server.py)."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Locator,
    Page,
    Playwright,
    sync_playwright,
)

from tests.tools import AXE, CHROMIUM

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE = {"width": 375, "height": 740}
DESKTOP = {"width": 1280, "height": 900}


# One Chromium per test process, started by the first test that asks for it and stopped
# when the run ends (close_browser, from tests/conftest.py): launching one costs ~2 s (1 s
# of CPU) and the suite's browser tests asked for about 30. Each test still gets contexts
# of its own (cookies, storage, cache: nothing shared with another test's), closed after it.
_browser: list[tuple[Playwright, Browser]] = []


def shared_browser() -> Browser:
    """This process's headless Chromium, launched on first use (and again if it died)."""
    if _browser and _browser[0][1].is_connected():
        return _browser[0][1]
    close_browser()
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM.path), headless=True, args=CHROMIUM_ARGS
        )
    except BaseException:
        playwright.stop()
        raise
    _browser.append((playwright, browser))
    return browser


def close_browser() -> None:
    """Stop this process's Chromium and its Playwright driver, if one was started."""
    while _browser:
        playwright, browser = _browser.pop()
        try:
            browser.close()
        finally:
            playwright.stop()


@contextmanager
def chromium(**context_options: Any) -> Iterator[BrowserContext]:
    """A fresh browser context of a headless Chromium (no cookie, storage or cache from
    another test), sized like a phone unless told otherwise. A test that uses it is marked
    ``@pytest.mark.needs("chromium")``."""
    with chromium_people(1, **context_options) as (context,):
        yield context


@contextmanager
def chromium_people(count: int, **context_options: Any) -> Iterator[list[BrowserContext]]:
    """``count`` contexts of one headless Chromium, each with cookies and storage of its
    own: ``count`` people at their own computers (sized like a phone unless told
    otherwise). A test that uses it is marked ``@pytest.mark.needs("chromium")``."""
    options: dict[str, Any] = {"viewport": PHONE, "locale": "en-GB"}
    options.update(context_options)
    browser = shared_browser()
    contexts: list[BrowserContext] = []
    try:
        for _ in range(count):
            contexts.append(browser.new_context(**options))
            contexts[-1].set_default_timeout(15_000)
        yield contexts
    except BaseException:
        # A test that failed (or timed out) mid-call may leave the driver in any state: the
        # next test gets a Chromium of its own, as each did before they shared one.
        with contextlib.suppress(Exception):  # the test's own error is the one to show
            close_browser()
        raise
    finally:
        for context in contexts:
            if browser.is_connected():
                context.close()


def link_in(text: str, base: str, path: str) -> str:
    """The one absolute URL under ``base`` + ``path`` in ``text`` (an email's text part)."""
    found = set(re.findall(re.escape(base + path) + r"[^\s<>\"]+", text))
    assert len(found) == 1, f"expected one {path} link under {base}, found {found}"
    return found.pop()


# Every form control that a person fills (not hidden, not a button) must have a label:
# <label for=id>, a wrapping <label>, aria-label or aria-labelledby.
_UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
  .filter(el => !['hidden', 'submit', 'button', 'reset', 'image'].includes(el.type))
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')
                && !el.getAttribute('aria-labelledby'))
  .map(el => el.outerHTML)"""

# textContent, not innerText: a button in a closed <details> is not rendered, yet it has its
# name when it is shown.
_UNNAMED_BUTTONS = """() => [...document.querySelectorAll('button, input[type=submit]')]
  .filter(el => !(el.textContent || el.value || el.getAttribute('aria-label') || '').trim())
  .map(el => el.outerHTML)"""


# axe.run on the whole document, violations only. Each line: rule, impact, how many elements,
# the first three elements' selectors, and axe's help text.
_AXE_RUN = """async (impacts) => {
  const results = await axe.run(document, {resultTypes: ['violations']});
  return results.violations.filter(v => impacts.includes(v.impact)).map(v =>
    `axe ${v.id} (${v.impact}, ${v.nodes.length} element${v.nodes.length === 1 ? '' : 's'}): `
    + v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')
    + (v.nodes.length > 3 ? ', …' : '') + ` — ${v.help}`);
}"""


def _axe_source() -> str:
    """axe.min.js, as tests/axe/package-lock.json pins it. Missing: the test is skipped,
    saying how to install it, or fails where CI (or DISTRIBUTOR_TEST_REQUIRE_AXE) is set."""
    reason = AXE.missing()
    if reason:
        message = f"needs axe: {reason}; {AXE.install}"
        required = AXE.required_by()
        if required:
            pytest.fail(f"{required} is set, so the axe check cannot be skipped: {message}")
        pytest.skip(message)
    return AXE.path.read_text(encoding="utf-8")


def axe_problems(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[str]:
    """axe-core's violations of ``impacts`` on the page as it is now, one line each.

    axe is evaluated through the DevTools protocol (``page.evaluate``), which the page's
    Content-Security-Policy does not govern, so pages keep their real CSP while checked: a
    ``<script>`` tag added to the page would be refused by ``script-src 'self'``."""
    source = _axe_source()
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(source)
    problems: list[str] = page.evaluate(_AXE_RUN, list(impacts))
    return problems


# A box that scrolls sideways (a table wider than a phone) must take the keyboard focus, so
# that it can be scrolled without a mouse, and have a name, so that a screen reader says
# what has the focus: tabindex=0, role=region and aria-label or aria-labelledby.
_UNNAMED_SCROLLERS = """() => [...document.querySelectorAll('body *')]
  .filter(el => ['auto', 'scroll'].includes(getComputedStyle(el).overflowX)
                && el.scrollWidth > el.clientWidth)
  .filter(el => el.tabIndex < 0 || el.getAttribute('role') !== 'region'
                || !(el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')))
  .map(el => el.outerHTML.slice(0, el.outerHTML.indexOf('>') + 1))"""


def accessibility_problems(page: Page) -> list[str]:
    """What a screen reader or a phone user would trip on: inputs without a label, buttons
    without a name, a box scrolling sideways that the keyboard cannot reach or that has no
    name, no <html lang>, no <h1>, a page wider than the viewport, and axe-core's serious and
    critical violations (:func:`axe_problems`)."""
    problems = [f"no label: {html}" for html in page.evaluate(_UNLABELLED)]
    problems += [f"button without a name: {html}" for html in page.evaluate(_UNNAMED_BUTTONS)]
    problems += [
        f"scrolls sideways, not focusable or unnamed: {html}"
        for html in page.evaluate(_UNNAMED_SCROLLERS)
    ]
    if not page.evaluate("() => document.documentElement.lang"):
        problems.append("no lang on <html>")
    if page.locator("h1").count() != 1:
        problems.append(f"{page.locator('h1').count()} <h1> elements")
    overflow = page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    if overflow > 0:
        problems.append(f"{overflow} px wider than the {page.viewport_size} viewport")
    return problems + axe_problems(page)


def checked_at_both_widths(page: Page, what: str) -> None:
    """No accessibility problem (:func:`accessibility_problems`: no sideways scroll either)
    on a desktop and then on a phone, where the page is left."""
    for size in (DESKTOP, PHONE):
        page.set_viewport_size(size)
        assert accessibility_problems(page) == [], (what, size["width"])


def focused(page: Page) -> dict[str, Any]:
    """The element that has the keyboard focus (``where``: its name, ``name=value`` for a
    radio button or checkbox) and whether its focus is visible (``outline``)."""
    info: dict[str, Any] = page.evaluate(
        """() => {
          const el = document.activeElement;
          const style = getComputedStyle(el);
          return {tag: el.tagName.toLowerCase(), type: el.type || '', id: el.id,
                  name: el.name || '', value: el.value || '', checked: !!el.checked,
                  where: ['radio', 'checkbox'].includes(el.type) ? el.name + '=' + el.value
                         : (el.name || el.id),
                  outline: style.outlineStyle !== 'none' && parseFloat(style.outlineWidth) > 0};
        }"""
    )
    return info


def loaded_width(image: Locator) -> int:
    """The natural width of the ``<img>`` once the browser has loaded it (0 if it could
    not): an image just put in the page may still be on its way, so it is waited for."""
    width: int = image.evaluate(
        """img => img.complete ? img.naturalWidth : new Promise(done => {
             img.addEventListener('load', () => done(img.naturalWidth), {once: true});
             img.addEventListener('error', () => done(0), {once: true});
           })"""
    )
    return width


def visit(page: Page, url: str) -> None:
    """Open ``url`` in ``page``; it must answer 200."""
    response = page.goto(url)
    assert response is not None and response.status == 200, (url, response)


def fill_login(page: Page, email: str, password: str) -> None:
    """Type an account's address and password into the workspace's login form."""
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(password)
