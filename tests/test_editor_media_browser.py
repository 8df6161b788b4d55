"""Dropping files on the release form in a real browser (Debian's headless Chromium,
Playwright) against the real app over HTTP (served as `distributor serve` serves it): each file
is uploaded at once, its row appears in the form with its thumbnail, a refused one says why,
and the form saves the image with its alt text and credit. axe-core finds no serious or
critical violation on the form with an image, at a phone's width and a desktop's, and nothing
is wider than the screen."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import pytest
from PIL import Image
from playwright.sync_api import Page
from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import Release
from distributor.office.accounts import create_user
from tests.browser import (
    accessibility_problems,
    chromium,
    fill_login,
    loaded_width,
)
from tests.helpers import add_topics, free_port
from tests.web_server import running_server

pytestmark = pytest.mark.needs("chromium", "axe")
WRITER, PASSWORD = "tom.writer@example.org", "correct horse battery staple"
# A DataTransfer built in the page, holding one file, dropped on the drop zone: what the
# browser dispatches when a file is dragged there from the desktop.
DROP = """([bytes, name, type]) => {
  const files = new DataTransfer();
  files.items.add(new File([new Uint8Array(bytes)], name, {type}));
  const zone = document.getElementById('dropzone');
  zone.dispatchEvent(new DragEvent('drop', {dataTransfer: files, bubbles: true,
                                            cancelable: true}));
}"""


@pytest.fixture
def served(sqlite_settings: Settings, redis_url: str) -> Iterator[tuple[str, Settings]]:
    port = free_port()
    settings = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "site_url": f"http://127.0.0.1:{port}"}
    )
    add_topics(settings, "climate")
    with session_scope(settings) as session:
        create_user(session, WRITER, "writer", PASSWORD, name="Tom Writer")
    with running_server(settings, port) as base:
        yield base, settings


def drop(page: Page, data: bytes, name: str, kind: str) -> None:
    """Drop a file of ``data`` named ``name`` (of media type ``kind``) on the drop zone."""
    page.evaluate(DROP, [list(data), name, kind])


def checked(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 844})
    assert accessibility_problems(page) == [], width
    wider = page.evaluate("() => document.documentElement.scrollWidth - innerWidth")
    assert wider <= 0, f"the form at {width} px scrolls sideways by {wider} px"


def test_a_dropped_image_is_uploaded_at_once_shown_and_saved(
    served: tuple[str, Settings],
) -> None:
    base, settings = served
    photo = io.BytesIO()
    Image.new("RGB", (800, 600), (20, 90, 160)).save(photo, "PNG")
    with chromium(viewport={"width": 1280, "height": 844}) as browser:
        page = browser.new_page()
        page.goto(base + "/admin/login")
        fill_login(page, WRITER, PASSWORD)
        page.get_by_role("button", name="Log in", exact=True).click()
        page.wait_for_url(base + "/admin")
        page.goto(base + "/admin/releases/new")
        zone = page.locator("#dropzone")
        assert zone.is_visible()  # shown by uploads.js; hidden without it
        page.get_by_label("Title").fill("Agency maps the bay's sea grass")
        page.get_by_label("Lead: the first paragraph").fill("A survey of the whole bay.")
        page.get_by_label("Climate").check()
        # A renamed program: refused, saying why, and no row added.
        drop(page, b"MZ\x90\x00" + b"\x00" * 200, "seagrass.png", "image/png")
        refused = page.locator("#upload-status li.failed")
        refused.wait_for()
        assert "seagrass.png: not a JPEG, PNG, WebP or GIF image" in refused.inner_text()
        assert page.locator("#image-rows li").count() == 0
        # The image: uploaded at once, its row in the form, its thumbnail served.
        drop(page, photo.getvalue(), "bay.png", "image/png")
        page.locator("#upload-status li.done").wait_for()
        row = page.locator("#image-rows li")
        assert row.count() == 1
        thumbnail = row.locator("img.thumbnail")
        assert loaded_width(thumbnail) == 600
        shown = thumbnail.get_attribute("src")
        assert page.get_by_role("radio", name="Lead image (shown first)").is_checked()
        page.get_by_label("Alt text (required)").fill("Sea grass under clear water")
        page.get_by_label("Credit (required)").fill("Photo: Tom Writer / Agency")
        for width in (390, 1280):
            checked(page, width)
        page.get_by_role("button", name="Create the draft").click()
        # "created", or "saved" when an autosave made the draft while axe ran (seconds).
        page.wait_for_url(re.compile(r"/admin/releases/\d+\?done=(created|saved)$"))
        with session_scope(settings) as session:
            release = session.scalars(select(Release)).one()
            [image] = release.images
        assert (image["alt"], image["credit"]) == (
            "Sea grass under clear water",
            "Photo: Tom Writer / Agency",
        )
        assert image["email_src"] == shown
        # The draft reopened: the row as saved, and the page as accessible.
        page.goto(f"{base}/admin/releases/{release.id}/edit")
        assert page.get_by_label("Alt text (required)").input_value() == image["alt"]
        for width in (390, 1280):
            checked(page, width)
