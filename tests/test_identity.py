"""The office's identity (issue 14): set on /admin/settings, by the API and the command line,
or in the environment (which wins, shown read-only); refusals name the field, keep what was
typed and store nothing; and what the journalists see — the release email as delivered to
a real SMTP server (logo, accent colour, postal address, privacy link, From, Reply-To, the
French name in a French email), the public pages' header and footer, and an email with a
wide logo that still fits a 390 px phone."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import lxml.html
import pytest
from alembic import command
from fastapi.testclient import TestClient
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from sqlalchemy import inspect

from distributor.core import audit
from distributor.core.apitokens import create_token
from distributor.core.config import Settings, load_settings
from distributor.core.db import alembic_config, get_engine, session_scope, upgrade
from distributor.core.errors import InputError
from distributor.core.models import IdentitySetting
from distributor.mail.compose import render_release
from distributor.office.accounts import create_user
from distributor.office.contacts import add_contact
from distributor.office.identity import environment_identity, identity, stored_values
from distributor.office.logo import store_logo
from distributor.site.builder import build_site
from distributor.web import create_app
from tests.clients import logged_in_as
from tests.corrections import send_release
from tests.helpers import add_subscribers, add_topics, csrf_of, make_release
from tests.mail_samples import recipient
from tests.processes import invoke_cli
from tests.smtp_server import SMTPServer

ADDRESS = "Agence nationale du climat\n12 rue de l'Observatoire\n75014 Paris, France"
PRIVACY = "https://agency.example.org/privacy"
CLEAN_SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 120 40">'
    b'<rect width="120" height="40" fill="#0b5394"/></svg>'
)
FORM = {
    "organisation": "National Climate Agency",
    "organisation_fr": "Agence nationale du climat",
    "accent_colour": "#0b5394",
    "postal_address": ADDRESS,
    "privacy_url": PRIVACY,
    "sender": "Climate Agency Press <newsroom@example.org>",
    "reply_to": "press-desk@agency.example.net",
}


def logo_png(width: int = 200, height: int = 50) -> bytes:
    """A PNG of ``width`` × ``height`` pixels, with a text chunk the re-encoding drops."""
    out = io.BytesIO()
    info = PngInfo()
    info.add_text("Comment", "made by the tests")
    Image.new("RGB", (width, height), (11, 83, 148)).save(out, "PNG", pnginfo=info)
    return out.getvalue()


@pytest.fixture
def s(settings: Settings, redis_url: str) -> Settings:
    """The test settings with no identity variable set (the fixture names a sender, which
    the environment would then fix): as an installation whose office uses the page."""
    given = settings.model_dump(exclude_unset=True)
    given.pop("sender")
    return load_settings(**given, broker_url=redis_url)


def identity_records(s: Settings) -> list[tuple[str, dict[str, object]]]:
    with session_scope(s) as session:
        events = audit.recent(session, 50, action="settings-update")
        return [(e.actor, e.details) for e in reversed(events)]


def test_the_page_sets_every_field_and_emails_and_pages_show_them(
    s: Settings, smtp_server: SMTPServer
) -> None:
    live = s.model_copy(update={"smtp_url": smtp_server.url})
    with session_scope(live) as session:
        ann = add_contact(session, {"name": "Ann Lee", "role": "Spokesperson"})
        add_contact(session, {"name": "Bob Roy"})
    with logged_in_as(live, "ines@example.org", "admin") as browser:
        page = browser.get("/admin/settings")
        assert page.status_code == 200 and "Settings" in page.text
        form = {**FORM, "press_contacts": [str(ann.id)], "csrf": csrf_of(page.text)}
        saved = browser.post(
            "/admin/settings",
            data=form,
            files={"logo": ("logo.png", logo_png(), "image/png")},
            follow_redirects=False,
        )
        assert saved.status_code == 303, saved.text
        shown = browser.get(saved.headers["location"])
        doc = lxml.html.document_fromstring(shown.text)
        for key, value in FORM.items():
            assert doc.xpath(f"//*[@name='{key}']")[0].value == value, key
        assert doc.xpath("//input[@name='press_contacts'][@checked]/@value") == [str(ann.id)]
        logo = doc.xpath("//img[@class='logo-preview']/@src")[0]
        assert re.fullmatch(r"https://news\.example\.org/media/[0-9a-f]{64}/office-logo\.png", logo)
        # The stored logo is a PNG re-encoded: its text chunk is gone.
        stored = live.public_dir / logo.removeprefix(live.site_url + "/")
        assert stored.read_bytes().startswith(b"\x89PNG") and b"made by the tests" not in (
            stored.read_bytes()
        )
        # A new release starts with the default press contacts ticked.
        editor = lxml.html.document_fromstring(browser.get("/admin/releases/new").text)
        assert editor.xpath("//input[@name='book'][@checked]/@value") == [str(ann.id)]
    ((actor, details),) = identity_records(live)
    assert "ines@example.org" in actor
    assert details["accent_colour"] == "#0b5394" and details["press_contacts"] == [ann.id]
    assert str(details["logo"]).endswith("/office-logo.png")

    # The release email, English and French, as a real SMTP server receives it.
    add_topics(live, "climate")
    add_subscribers(live, [("en@example.com", "En", "en", "climate"),
                           ("fr@example.com", "Fr", "fr", "climate")])  # fmt: skip
    send_release(live, make_release(live).id)
    send_release(live, make_release(live, lang="fr", slug="accord").id)
    english = smtp_server.handler.by_rcpt()["en@example.com"][0].parsed()
    french = smtp_server.handler.by_rcpt()["fr@example.com"][0].parsed()
    assert english["From"] == "Climate Agency Press <newsroom@example.org>"
    assert english["Reply-To"] == "press-desk@agency.example.net"
    html = english.get_body(("html",)).get_content()
    mail = lxml.html.document_fromstring(html)
    (img,) = mail.xpath("//td[contains(@class,'masthead')]//img")
    assert img.get("src") == logo and img.get("alt") == "National Climate Agency"
    assert (img.get("width"), img.get("height")) == ("160", "40")  # 200×50 at 40 px high
    assert "#0b5394" in mail.xpath("//td[contains(@class,'masthead')]/@style")[0]
    footer = mail.xpath("//td[contains(@class,'footer')]")[0]
    assert "12 rue de l'Observatoire" in footer.text_content()
    assert footer.xpath(".//a/@href")[-1] == PRIVACY
    text = english.get_body(("plain",)).get_content()
    assert "75014 Paris, France" in text and f"Privacy policy: {PRIVACY}" in text
    french_html = french.get_body(("html",)).get_content()
    assert 'alt="Agence nationale du climat"' in french_html
    assert "Politique de confidentialité" in french_html
    assert french.get_body(("plain",)).get_content().count("Agence nationale du climat") >= 2

    # The public pages: the built newsroom and a dynamic page, in French.
    build_site(live)
    newsroom = lxml.html.document_fromstring((live.public_dir / "fr" / "index.html").read_text())
    assert newsroom.xpath("//header//img/@alt") == ["Agence nationale du climat"]
    assert PRIVACY in newsroom.xpath("//footer//a/@href")
    assert "75014 Paris, France" in newsroom.xpath("//footer")[0].text_content()
    with TestClient(create_app(live), base_url="https://testserver") as client:
        form_page = lxml.html.document_fromstring(client.get("/subscribe?lang=fr").text)
    assert form_page.xpath("//header//img/@src") == [logo]
    assert "12 rue de l'Observatoire" in form_page.xpath("//footer")[0].text_content()


REFUSALS = [
    ({"accent_colour": "blue"}, None, "accent_colour", "#rrggbb"),
    ({"accent_colour": "#f0e68c"}, None, "accent_colour", "too light"),
    ({"privacy_url": "javascript:alert(1)"}, None, "privacy_url", "http"),
    ({"reply_to": "not an address"}, None, "reply_to", "not an address"),
    ({"sender": "Press <press@elsewhere.example>"}, None, "sender", "DMARC"),
    ({}, ("logo.png", b"GIF89a not really a png"), "logo", "neither a PNG nor an SVG"),
    ({}, ("logo.png", b"\x89PNG\r\n\x1a\n broken"), "logo", "not a whole PNG"),
    ({}, ("logo.svg", CLEAN_SVG.replace(b"</svg>", b"<script>alert(1)</script></svg>")),
     "logo", "a script"),
]  # fmt: skip


@pytest.mark.parametrize(("changes", "upload", "field", "why"), REFUSALS)
def test_a_refusal_names_the_field_keeps_what_was_typed_and_stores_nothing(
    sqlite_settings: Settings,
    redis_url: str,
    changes: dict[str, str],
    upload: tuple[str, bytes] | None,
    field: str,
    why: str,
) -> None:
    given = sqlite_settings.model_dump(exclude_unset=True)
    given.pop("sender")
    s = load_settings(**given, broker_url=redis_url)
    with logged_in_as(s, "ines@example.org", "admin") as browser:
        csrf = csrf_of(browser.get("/admin/settings").text)
        typed = {**FORM, **changes, "organisation": "Typed, not saved", "csrf": csrf}
        files = {"logo": (upload[0], upload[1], "application/octet-stream")} if upload else None
        refused = browser.post("/admin/settings", data=typed, files=files)
    assert refused.status_code == 422
    doc = lxml.html.document_fromstring(refused.text)
    error = doc.xpath("//*[@id='settings-error']")[0].text_content()
    assert error.startswith(f"{field}:") and why in error, error
    invalid = doc.xpath("//*[@aria-invalid='true']")[0]
    assert invalid.get("name") == field or invalid.tag == "fieldset"
    assert doc.xpath("//input[@name='organisation']/@value") == ["Typed, not saved"]
    with session_scope(s) as session:
        assert stored_values(session) == {}
    assert identity_records(s) == []


FOREIGN = b'<foreignObject><p xmlns="http://www.w3.org/1999/xhtml">x</p></foreignObject>'
REMOTE_IMAGE = b'<image href="https://evil.example/x.png"/>'
BAD_SVGS = [
    (CLEAN_SVG.replace(b"<rect", b'<rect onload="alert(1)"'), "event handler"),
    (CLEAN_SVG.replace(b"<rect", FOREIGN + b"<rect"), "foreign object"),
    (CLEAN_SVG.replace(b'fill="#0b5394"', b'fill="url(https://evil.example/x)"'), "outside"),
    (CLEAN_SVG.replace(b"<rect", REMOTE_IMAGE + b"<rect"), "embedded image"),
    (b'<?xml-stylesheet href="https://evil.example/x.css"?>' + CLEAN_SVG, "style sheet"),
    (b'<!DOCTYPE svg [<!ENTITY a "aaaa">]>' + CLEAN_SVG, "DTD"),
    (b'<svg xmlns="http://www.w3.org/2000/svg"><rect width="1" height="1"/></svg>', "size"),
]


@pytest.mark.parametrize(("svg", "why"), BAD_SVGS)
def test_an_svg_logo_is_a_drawing_and_nothing_else(tmp_path: Path, svg: bytes, why: str) -> None:
    settings = load_settings(data_dir=tmp_path / "var")
    with pytest.raises(InputError, match=why) as refused:
        store_logo(settings, svg, "logo.svg")
    assert refused.value.field == "logo"
    stored = store_logo(settings, CLEAN_SVG, "logo.svg")
    assert stored.path.endswith("/office-logo.svg") and (stored.width, stored.height) == (120, 40)


def test_a_value_set_in_the_environment_wins_and_the_page_shows_it_read_only(
    sqlite_settings: Settings, redis_url: str
) -> None:
    s = sqlite_settings.model_copy(
        update={"broker_url": redis_url, "accent_colour": "#7a1f1f", "privacy_url": PRIVACY}
    )
    with session_scope(s) as session:  # as if set on the page before the variable was
        session.add(IdentitySetting(key="accent_colour", value="#0b5394"))
    with session_scope(s) as session:
        assert identity(session, s).accent_colour == "#7a1f1f"
    with logged_in_as(s, "ines@example.org", "admin") as browser:
        page = lxml.html.document_fromstring(browser.get("/admin/settings").text)
        colour = page.xpath("//input[@name='accent_colour']")[0]
        assert colour.get("readonly") is not None and colour.value == "#7a1f1f"
        note = page.xpath(f"//*[@id='{colour.get('aria-describedby')}']")[0].text_content()
        assert "Set by DISTRIBUTOR_ACCENT_COLOUR" in note
        sender = page.xpath("//input[@name='sender']")[0]  # the fixture sets the sender
        assert sender.get("readonly") is not None
        assert page.xpath("//input[@name='reply_to']")[0].get("readonly") is None
    refused = invoke_cli(s, "settings", "set", "accent_colour", "#0b5394")
    assert refused.returncode == 1 and "set by DISTRIBUTOR_ACCENT_COLOUR" in refused.stderr


def test_the_command_line_and_the_api_read_and_change_the_identity(s: Settings) -> None:
    done = invoke_cli(s, "settings", "set", "postal_address", "1 Main St\\nSpringfield")
    assert done.returncode == 0, done.stderr
    assert "settings changed: postal_address" in done.stdout
    shown = invoke_cli(s, "settings", "show", "--json")
    fields = {f["key"]: f for f in json.loads(shown.stdout)}
    assert fields["postal_address"]["value"] == "1 Main St\nSpringfield"
    assert fields["organisation"]["set_by"] is None
    with session_scope(s) as session:
        admin = create_user(session, "ines@example.org", "admin", "a long enough password")
        writer = create_user(session, "tom@example.org", "writer", "a long enough password")
        admin_key = create_token(session, "admin-desk", ["settings"], admin.id)
        writer_key = create_token(session, "writer-desk", ["releases", "settings"], writer.id)
        with pytest.raises(InputError, match="the settings scope is for a token of an admin"):
            create_token(session, "nobody-bot", ["settings"])  # a token of nobody: never
    with TestClient(create_app(s)) as api:
        auth = {"Authorization": f"Bearer {admin_key}"}
        put = api.put("/api/settings", json={"accent_colour": "#0b5394"}, headers=auth)
        assert put.status_code == 200, put.text
        assert {f["key"]: f["value"] for f in put.json()}["accent_colour"] == "#0b5394"
        bad = api.put("/api/settings", json={"privacy_url": "ftp://x"}, headers=auth)
        assert bad.status_code == 422 and bad.json()["field"] == "privacy_url"
        unknown = api.put("/api/settings", json={"colour": "#000000"}, headers=auth)
        assert unknown.status_code == 422 and unknown.json()["field"] == "colour"
        other = {"Authorization": f"Bearer {writer_key}"}
        assert api.get("/api/settings", headers=other).status_code == 403
        assert api.put("/api/settings", json={}, headers=other).status_code == 403
    assert identity_records(s)[-1] == (
        "user:ines@example.org (token:admin-desk)",
        {"accent_colour": "#0b5394"},
    )


def test_the_migration_adds_and_removes_the_identity_table(settings: Settings) -> None:
    config = alembic_config(settings)
    try:
        command.downgrade(config, "0019")
        assert "identity_settings" not in inspect(get_engine(settings)).get_table_names()
    finally:
        upgrade(settings)
    assert "identity_settings" in inspect(get_engine(settings)).get_table_names()


@pytest.mark.needs("chromium")
def test_an_email_with_a_wide_logo_fits_a_phone(sqlite_settings: Settings) -> None:
    from tests.browser import chromium

    logo = sqlite_settings.data_dir / "wide.png"
    logo.write_bytes(logo_png(1600, 100))
    s = sqlite_settings.model_copy(update={"logo_file": logo})
    add_topics(s, "climate")
    release = make_release(s)
    rendered = render_release(release, s, environment_identity(s))
    html = rendered.html_for(recipient(s, 1))
    assert re.search(r'<img class="logo"[^>]* width="240" height="15"', html)
    with chromium(viewport={"width": 390, "height": 844}) as browser:
        page = browser.new_page()
        page.set_content(html)
        sideways = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        box = page.locator("img.logo").bounding_box()
    assert sideways <= 0, f"the email scrolls sideways by {sideways} px at 390 px"
    assert box is not None and box["width"] == 240


def test_an_svg_logo_is_served_as_an_image_that_runs_nothing(sqlite_settings: Settings) -> None:
    stored = store_logo(sqlite_settings, CLEAN_SVG, "logo.svg")
    with TestClient(create_app(sqlite_settings)) as client:
        served = client.get(stored.path)
    assert served.status_code == 200 and served.content == CLEAN_SVG
    assert served.headers["content-type"] == "image/svg+xml"
    assert served.headers["content-security-policy"].startswith("default-src 'none'")
    assert "immutable" in served.headers["cache-control"]
