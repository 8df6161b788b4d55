"""The release email as a reader's mail program sees it: every composed message is parsed
with the standard library and checked for what a person would notice."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from distributor.core.config import Settings, load_settings
from distributor.core.errors import ConfigError, ReleaseInputError, SubscriberInputError
from distributor.core.formats import written_date
from distributor.mail.compose import Recipient, RenderedRelease, render_release
from distributor.mail.render import wrap_text
from distributor.office.identity import environment_identity
from tests.helpers import TEST_SECRET_KEY
from tests.mail_samples import french_release, parse_email, parts, recipient


@pytest.fixture
def mail_settings(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "var",
        site_url="https://news.example.org",
        secret_key=TEST_SECRET_KEY,
        sender="Agence française de l'été <press@example.org>",
        organisation="Agence nationale du climat",
    )


@pytest.fixture
def rendered(mail_settings: Settings) -> RenderedRelease:
    return render_release(french_release(), mail_settings, environment_identity(mail_settings))


def test_both_parts_carry_the_whole_release(
    rendered: RenderedRelease, mail_settings: Settings
) -> None:
    msg = parse_email(rendered.message_for(recipient(mail_settings, 1)))
    assert msg.get_content_type() == "multipart/alternative"
    subtypes = [part.get_content_type() for part in msg.iter_parts()]
    assert subtypes == ["text/plain", "text/html"]
    for part in msg.iter_parts():
        assert part.get_content_charset() == "utf-8"
    text, html = parts(msg)
    for body in (text, html):
        assert "coopération européen" in body.replace("\n", " ")
        assert "Huit agences européennes mettent en commun leurs données." in body
        assert "Nous devons agir ensemble" in body
        assert "Jeanne Dupont" in body and "Attachée de presse" in body
        assert "+33 1 00 00 00 00" in body and "presse@example.org" in body
        assert "Paris, 20 novembre 2026" in body
        assert "Communiqué de presse".upper() in body.upper()
        assert "Climat, International" in body
    assert ".Cette ligne commence par un point." in text
    flat = " ".join(text.split())
    assert "le rapport complet <https://news.example.org/rapports/2026-climat.pdf>" in flat
    assert 'href="tel:+33100000000"' in html
    assert 'href="mailto:presse@example.org"' in html
    assert "<h1" in html and 'lang="fr"' in html


def test_relative_links_and_images_are_made_absolute(
    rendered: RenderedRelease, mail_settings: Settings
) -> None:
    _, html = parts(parse_email(rendered.message_for(recipient(mail_settings, 1))))
    assert 'href="https://news.example.org/rapports/2026-climat.pdf"' in html
    assert 'href="https://example.net/carte"' in html
    assert 'src="https://news.example.org/media/signature.jpg"' in html
    assert 'href="https://news.example.org/media/signature-hd.jpg"' in html
    assert 'alt="La signature à Paris"' in html
    assert "Agence / J. Martin" in html and "Image haute définition" in html
    assert 'href="https://news.example.org/releases/accord-climat"' in html
    assert '<h1 class="title" style="' in html and ".content p {" not in html  # CSS inlined


def test_each_recipient_gets_only_their_own_links(
    rendered: RenderedRelease, mail_settings: Settings
) -> None:
    alice, bob = recipient(mail_settings, 1, "Alice"), recipient(mail_settings, 2, "Bob")
    for me, other in ((alice, bob), (bob, alice)):
        msg = parse_email(rendered.message_for(me))
        assert msg["List-Unsubscribe"] == f"<{me.unsubscribe_url}>"
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert msg["To"].addresses[0].addr_spec == me.email
        for body in parts(msg):
            assert me.unsubscribe_url in body and me.preferences_url in body
            assert other.unsubscribe_url not in body and other.preferences_url not in body
            assert "x-unsubscribe-" not in body and "x-preferences-" not in body
        text, html = parts(msg)
        assert f'href="{me.unsubscribe_url}"' in html
        assert f'href="{me.preferences_url}"' in html
        assert text == rendered.text_for(me).replace("\r\n", "\n")
        assert html == rendered.html_for(me).replace("\r\n", "\n")


def test_headers(rendered: RenderedRelease, mail_settings: Settings) -> None:
    before = datetime.now(UTC)
    msg = parse_email(rendered.message_for(recipient(mail_settings, 42, "Jean Martin")))
    assert msg["From"].addresses[0].display_name == "Agence française de l'été"
    assert msg["From"].addresses[0].addr_spec == "press@example.org"
    assert str(msg["To"]) == "Jean Martin <reader42@example.com>"
    assert msg["Subject"] == (
        "L'Agence signe un accord de coopération européen sur la surveillance du "
        "climat et des océans"
    )
    assert abs((parsedate_to_datetime(msg["Date"]) - before).total_seconds()) < 60
    assert msg["Message-ID"] == "<release-7.42@example.org>"
    assert msg["MIME-Version"] == "1.0"
    assert msg["Content-Language"] == "fr"
    assert msg["List-Id"] == (
        "Communiqués de presse – Agence nationale du climat <releases.example.org>"
    )
    assert rendered.envelope_from == "press@example.org"
    for name in ("From", "To", "Subject", "Date", "Message-ID", "List-Id", "List-Unsubscribe"):
        assert len(msg.get_all(name) or []) == 1, name


def test_wire_format_is_crlf_ascii_and_short_lines(
    rendered: RenderedRelease, mail_settings: Settings
) -> None:
    long_name = "Marie-Amélie de La Rochefoucauld-Doudeauville, rédactrice en chef adjointe"
    data = rendered.message_for(recipient(mail_settings, 1, long_name))
    assert data.isascii()
    assert data.endswith(b"\r\n")
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    lines = data.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    long_header_lines = [line for line in head if len(line) > 78]
    assert all(line.startswith(b"List-Unsubscribe: <https://") for line in long_header_lines)
    assert 8_000 < len(data) < 40_000


@pytest.mark.parametrize(
    "name",
    [
        "Jean-François Lefèvre",
        'Doe, Jane "JD"',
        "Zoë Ωmega 東京",
        "Marie-Amélie de La Rochefoucauld-Doudeauville, rédactrice en chef adjointe, Le Monde",
        "A" * 90,
        "Trailing =?utf-8?q?x?= lookalike",
    ],
)
def test_names_round_trip(rendered: RenderedRelease, mail_settings: Settings, name: str) -> None:
    data = rendered.message_for(recipient(mail_settings, 3, name))
    to = parse_email(data)["To"].addresses[0]
    assert to.display_name == name
    assert to.addr_spec == "reader3@example.com"
    head = data.split(b"\r\n\r\n", 1)[0]
    to_field = re.search(rb"^To:.*?(?=\r\n\S)", head, re.S | re.M)
    assert to_field is not None
    for line in to_field.group(0).split(b"\r\n"):
        assert len(line) <= 78 or len(line.removeprefix(b"To:").split()) == 1, line


def test_empty_name_is_a_bare_address(rendered: RenderedRelease, mail_settings: Settings) -> None:
    msg = parse_email(rendered.message_for(recipient(mail_settings, 4, "")))
    assert str(msg["To"]) == "reader4@example.com"


def test_long_french_subject_is_folded_and_round_trips(mail_settings: Settings) -> None:
    title = (
        "Sécheresse : l'Agence publie l'état des nappes phréatiques au 1er novembre et "
        "recommande des mesures de restriction dans quarante-deux départements métropolitains"
    )
    rendered = render_release(
        french_release(title=title), mail_settings, environment_identity(mail_settings)
    )
    data = rendered.message_for(recipient(mail_settings, 5))
    assert parse_email(data)["Subject"] == title
    subject = re.search(rb"^Subject:.*?(?=\r\n\S)", data, re.S | re.M)
    assert subject is not None
    assert all(len(line) <= 78 for line in subject.group(0).split(b"\r\n"))


def test_control_characters_in_a_title_become_spaces(mail_settings: Settings) -> None:
    rendered = render_release(
        french_release(title="Line\r\nBcc: x@example.net\x01end"),
        mail_settings,
        environment_identity(mail_settings),
    )
    data = rendered.message_for(recipient(mail_settings, 1))
    msg = parse_email(data)
    assert msg["Subject"] == "Line Bcc: x@example.net end"
    assert msg.get_all("Bcc") is None


def test_a_release_without_id_or_with_a_bad_language_is_refused(mail_settings: Settings) -> None:
    with pytest.raises(ReleaseInputError, match="no id"):
        render_release(french_release(id=None), mail_settings, environment_identity(mail_settings))
    with pytest.raises(ReleaseInputError, match="language"):
        render_release(
            french_release(language="fr\r\nX-Evil: 1"),
            mail_settings,
            environment_identity(mail_settings),
        )


@pytest.mark.parametrize(
    "name",
    ["Eve\r\nBcc: victim@example.net", "Eve\nBcc: x@example.net", "Eve\rX", "Eve\x00", "E" * 201],
)
def test_a_line_break_in_a_name_is_refused(mail_settings: Settings, name: str) -> None:
    with pytest.raises(SubscriberInputError, match="name"):
        recipient(mail_settings, 6, name)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("email", "eve@example.net\r\nBcc: victim@example.net"),
        ("email", "Eve <eve@example.net>"),
        ("email", "rene@exémple.fr"),  # a U-label: stored domains are A-labels
        ("email", "re\x85ne@exemple.fr"),  # a C1 control character
        ("email", "re\u2028ne@exemple.fr"),  # a line separator
        ("unsubscribe_url", "https://news.example.org/u/x>\r\nBcc: x"),
        ("preferences_url", "javascript:alert(1)"),
    ],
)
def test_unsafe_address_or_link_is_refused(mail_settings: Settings, field: str, value: str) -> None:
    values = {
        "subscriber_id": 1,
        "email": "ok@example.com",
        "name": "Ok",
        "unsubscribe_url": "https://news.example.org/unsubscribe/t",
        "preferences_url": "https://news.example.org/preferences/t",
        field: value,
    }
    with pytest.raises(SubscriberInputError, match=field):
        Recipient(**values)  # type: ignore[arg-type]


def test_message_id_is_the_same_for_the_same_pair(
    rendered: RenderedRelease, mail_settings: Settings
) -> None:
    first = parse_email(rendered.message_for(recipient(mail_settings, 9)))["Message-ID"]
    again = parse_email(rendered.message_for(recipient(mail_settings, 9)))["Message-ID"]
    rerendered = render_release(
        french_release(), mail_settings, environment_identity(mail_settings)
    )
    other_render = parse_email(rerendered.message_for(recipient(mail_settings, 9)))["Message-ID"]
    other_subscriber = parse_email(rendered.message_for(recipient(mail_settings, 10)))["Message-ID"]
    assert first == again == other_render == rendered.message_id(9)
    assert other_subscriber != first


def test_html_is_escaped_but_the_sanitised_body_is_not(mail_settings: Settings) -> None:
    release = french_release(
        title="Fish & <chips>",
        lead='Lead with <b>tags</b> & "quotes"',
        body_html="<p>Body with <strong>bold</strong> &amp; more</p>",
        body_text="Body with **bold** & more",
        language="en",
        topics=[],
        contacts=[{"name": "<Jane>", "email": "jane@example.org"}],
    )
    rendered = render_release(release, mail_settings, environment_identity(mail_settings))
    text, html = parts(parse_email(rendered.message_for(recipient(mail_settings, 1))))
    assert "Fish &amp; &lt;chips&gt;" in html and "<chips>" not in html
    assert "&lt;b&gt;tags&lt;/b&gt;" in html
    assert "&lt;Jane&gt;" in html
    assert "<strong>bold</strong> &amp; more" in html
    assert "Fish & <chips>" in text and "Body with **bold** & more" in text
    assert "Press release".upper() in text and "20 November 2026" in text
    assert "subscribed to the press releases of Agence nationale du climat" in " ".join(
        text.split()
    )


def test_english_labels(mail_settings: Settings) -> None:
    release = french_release(language="en", title="Agency signs agreement")
    rendered = render_release(release, mail_settings, environment_identity(mail_settings))
    msg = parse_email(rendered.message_for(recipient(mail_settings, 1)))
    text, html = parts(msg)
    assert msg["Content-Language"] == "en"
    assert msg["List-Id"] == "Agence nationale du climat press releases <releases.example.org>"
    for body in (text, html):
        for label in ("Press contacts", "Unsubscribe", "Manage your subscription"):
            assert label.upper() in body.upper()
        assert "You receive this email because you subscribed to: Climate, International." in (
            " ".join(body.split())
        )
    assert "Photo: Agence / J. Martin" in text and "High-resolution image" in html


def test_text_part_is_wrapped_without_breaking_links(
    rendered: RenderedRelease, mail_settings: Settings
) -> None:
    me = recipient(mail_settings, 1)
    text, _ = parts(parse_email(rendered.message_for(me)))
    for line in text.splitlines():
        assert len(line) <= 76 or "://" in line or line.startswith("> "), line
    assert me.unsubscribe_url in text.splitlines()[-1]


def test_wrap_text_keeps_markdown_structure() -> None:
    source = (
        "A paragraph " + "word " * 30 + "\nthat goes on.\n\n"
        "| a | b |\n|---|---|\n| " + "x" * 90 + " | y |\n\n"
        "- an item " + "long " * 20 + "\n"
        "```\ncode " + "z" * 100 + "\n```\n"
        "See https://example.org/" + "p" * 100
    )
    wrapped = wrap_text(source)
    assert "| " + "x" * 90 + " | y |" in wrapped.splitlines()
    assert "code " + "z" * 100 in wrapped.splitlines()
    assert "https://example.org/" + "p" * 100 in wrapped
    assert wrapped.splitlines()[0].startswith("A paragraph word")
    assert any(line.startswith("  long") for line in wrapped.splitlines())
    assert " ".join(wrapped.split()) == " ".join(source.split())


def test_dates_per_language() -> None:
    day = datetime(2026, 11, 20).date()
    assert written_date(day, "en") == "20 November 2026"
    assert written_date(day, "fr") == "20 novembre 2026"
    assert written_date(day.replace(day=1), "fr-CA") == "1er novembre 2026"
    assert written_date(day, "de") == "20 November 2026"


def test_a_template_without_unsubscribe_link_is_refused(
    tmp_path: Path, mail_settings: Settings
) -> None:
    (tmp_path / "templates" / "email").mkdir(parents=True)
    source = Path(mail_settings.templates_dir) / "email"
    for name in ("release.txt", "_footer.txt"):
        (tmp_path / "templates/email" / name).write_text(
            (source / name).read_text(encoding="utf-8"), encoding="utf-8"
        )
    (tmp_path / "templates/email/release.html").write_text(
        '<p>{{ title }}</p><a href="{{ preferences_url }}">prefs</a>', encoding="utf-8"
    )
    settings = mail_settings.model_copy(update={"templates_dir": tmp_path / "templates"})
    with pytest.raises(ConfigError, match=r"release\.html has no unsubscribe link"):
        render_release(french_release(), settings, environment_identity(settings))


def test_the_email_dates_a_release_on_the_offices_day_as_its_page_does(
    mail_settings: Settings,
) -> None:
    """A release dated 00:30 in Paris is the 21st there and the 20th in UTC: the email says
    the 21st, in the same words as the page ("21 November 2026", "21 novembre 2026")."""
    paris = mail_settings.model_copy(update={"timezone": "Europe/Paris"})
    for lang, day in (("en", "21 November 2026"), ("fr", "21 novembre 2026")):
        release = french_release(language=lang)
        release.date = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
        rendered = render_release(release, paris, environment_identity(paris))
        text, html = parts(parse_email(rendered.message_for(recipient(paris, 1))))
        assert day in text and day in html, lang
