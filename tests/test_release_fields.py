"""What a release's fields refuse (issue 11): links that would lead to another host or run
script, characters that reorder or hide text, contact addresses and phone numbers that are
not ones, each refused with the field named; and what a link or contact stored before these
checks becomes in the page, the email and the feeds (nothing that leaves the site)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from distributor.audience.subscribers import check_name
from distributor.core.config import Settings, load_settings
from distributor.core.errors import InputError, ReleaseInputError, SubscriberInputError
from distributor.core.models import Release, Topic
from distributor.core.slugs import SLUG_MAX, slugify
from distributor.mail import headers
from distributor.mail.compose import render_release
from distributor.office.identity import environment_identity
from distributor.releases.source import parse_release
from distributor.releases.topics import check_names, parse_names
from distributor.site.feeds import build_feed
from distributor.site.newsroom import Newsroom
from tests.helpers import TEST_SECRET_KEY
from tests.mail_samples import french_release, parse_email, parts, recipient

SITE = "https://news.example.org"
BASE: dict[str, Any] = {
    "title": "Agency signs agreement",
    "lang": "en",
    "topics": ["climate"],
    "date": "2026-11-20T09:00:00+01:00",
    "dateline": "PARIS",
    "contacts": [{"name": "Jane Doe", "role": "Press officer", "phone": "+33 1 00 00 00 00",
                  "email": "press@example.org"}],
    "images": [{"src": "/media/a.jpg", "alt": "The signing", "credit": "Agency"}],
    "attachments": [{"href": "/files/report.pdf", "title": "The report"}],
}  # fmt: skip
BODY = "The Agency today signed an agreement.\n\nA second paragraph.\n"


@pytest.fixture
def bare(tmp_path: Path) -> Settings:
    """Settings without a database: reading and rendering a release need none."""
    return load_settings(data_dir=tmp_path / "var", site_url=SITE, secret_key=TEST_SECRET_KEY)


def release_file(body: str = BODY, **fields: Any) -> str:
    meta = {**BASE, **fields}
    return "---\n" + yaml.safe_dump(meta, allow_unicode=True) + "---\n" + body


def with_item(key: str, index: int, **fields: str) -> dict[str, Any]:
    """``BASE[key]`` with a second entry, and ``fields`` set on entry ``index``."""
    items = [dict(BASE[key][0]), dict(BASE[key][0])]
    items[index].update(fields)
    return {key: items}


def refused(settings: Settings, text: str) -> str:
    with pytest.raises(ReleaseInputError) as info:
        parse_release(text, "r.md", settings)
    return str(info.value)


# -- links ---------------------------------------------------------------------------------

HOSTILE_LINKS = [
    "//evil.example/x.jpg",  # protocol-relative: another host
    "/\\evil.example/x.jpg",  # browsers read \ as /
    "\\\\evil.example\\x.jpg",
    "/%2Fevil.example/x.jpg",  # a server decoding %2F before redirecting
    "/%5cevil.example/x.jpg",
    "/%252Fevil.example/x.jpg",
    "\t//evil.example/x.jpg",
    "\u200b//evil.example/x.jpg",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:image/png;base64,AAAA",
    "vbscript:x",
    "https:///evil.example/x.jpg",
    "https://press.example.org@evil.example/x.jpg",
    "https:/evil.example/x.jpg",
    '/media/a.jpg"><script>',
]


@pytest.mark.parametrize("link", HOSTILE_LINKS)
@pytest.mark.parametrize(
    ("key", "index", "name"),
    [("images", 0, "src"), ("images", 1, "href"), ("images", 0, "email_src"),
     ("attachments", 1, "href")],
)  # fmt: skip
def test_links_that_leave_the_site_or_run_script_are_refused_naming_the_field(
    bare: Settings, link: str, key: str, index: int, name: str
) -> None:
    text = release_file(**with_item(key, index, **{name: link}))
    message = refused(bare, text)
    assert f"r.md: field '{key}.{index}.{name}'" in message, message


@pytest.mark.parametrize(
    "link",
    ["/media/a.jpg", "/files/2026 report.pdf", "https://cdn.example.net/a.png",
     "HTTPS://CDN.EXAMPLE.NET/A.PNG", "http://[2001:db8::1]:8080/a.png", "/media/a.jpg?v=2&x=1"],
)  # fmt: skip
def test_site_paths_and_web_urls_are_accepted(bare: Settings, link: str) -> None:
    draft = parse_release(release_file(**with_item("attachments", 1, href=link)), "r.md", bare)
    assert draft.meta.attachments[1].href == link


# -- text that reorders or hides ---------------------------------------------------------------

DECEIVING = {
    "\u202e": "RIGHT-TO-LEFT OVERRIDE",
    "\u202d": "LEFT-TO-RIGHT OVERRIDE",
    "\u202b": "RIGHT-TO-LEFT EMBEDDING",
    "\u2067": "RIGHT-TO-LEFT ISOLATE",
    "\u2069": "POP DIRECTIONAL ISOLATE",
    "\ufeff": "ZERO WIDTH NO-BREAK SPACE",
    "\u206e": "NATIONAL DIGIT SHAPES",
    "\ufdd0": "U+FDD0",
    "\U0001fffe": "U+1FFFE",
    "\x9b": "U+009B",
}


@pytest.mark.parametrize("char", list(DECEIVING))
@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"title": "Invoice {c}gpj.exe"}, "title"),
        ({"dateline": "PA{c}RIS"}, "dateline"),
        ({"lead": "The lead{c} here."}, "lead"),
        ({"contacts": [{"name": "Jane{c} Doe"}]}, "contacts.0.name"),
        ({"contacts": [{"name": "Jane", "role": "Press{c}"}]}, "contacts.0.role"),
        ({"images": [{"src": "/a.jpg", "alt": "A{c}B"}]}, "images.0.alt"),
        ({"images": [{"src": "/a.jpg", "alt": "A", "credit": "B{c}"}]}, "images.0.credit"),
        ({"attachments": [{"href": "/a.pdf", "title": "T{c}"}]}, "attachments.0.title"),
    ],
)
def test_bidi_controls_and_noncharacters_are_refused_in_single_line_fields(
    bare: Settings, char: str, fields: dict[str, Any], where: str
) -> None:
    filled = json.loads(json.dumps(fields).replace("{c}", json.dumps(char)[1:-1]))
    message = refused(bare, release_file(**filled))
    assert f"field '{where}'" in message and DECEIVING[char] in message, message


def test_a_lead_taken_from_the_body_and_the_body_are_checked_too(bare: Settings) -> None:
    message = refused(bare, release_file("The lead\u2066 here.\n\nThe body.\n"))
    assert "field 'lead' (the first paragraph): U+2066" in message
    message = refused(bare, release_file("The lead.\n\nThe body\u202e reversed.\n"))
    assert "field 'body': U+202E (RIGHT-TO-LEFT OVERRIDE) on line 3 of the body" in message


def test_right_to_left_releases_keep_their_marks_joiners_and_embeddings(bare: Settings) -> None:
    # Arabic with RLM and ALM, Hebrew, Persian with ZWNJ, an emoji sequence with ZWJ; a body
    # pasted from a word processor with RLE ... PDF around a Latin name.
    title = "الوكالة توقع اتفاقية\u200f 2026\u061c — הסוכנות חותמת — می\u200cخواهد 👩\u200d🔬"
    body = "الفقرة الأولى\u200f.\n\nقال \u202bJean Dupont\u202c إن الاتفاقية مهمة.\n"
    draft = parse_release(release_file(body, title=title, dateline="باريس"), "r.md", bare)
    assert draft.meta.title == title and draft.lead == "الفقرة الأولى\u200f."
    assert "\u202bJean Dupont\u202c" in draft.body_html


def test_topic_and_subscriber_names_go_through_the_same_check() -> None:
    with pytest.raises(InputError, match=r"--name 'fr:Climat\\u202e': U\+202E"):
        parse_names(["Climate", "fr:Climat\u202e"], "en")
    with pytest.raises(InputError, match=r"names: the en name: U\+2066"):
        check_names({"en": "Climate\u2066"}, ["en"])
    with pytest.raises(SubscriberInputError, match=r"name: U\+202E"):
        check_name("Jane\u202eDoe")
    with pytest.raises(SubscriberInputError, match=r"name: U\+FDD0"):
        check_name("Jane\ufdd0")
    assert check_name(" مريم\u200f ") == "مريم\u200f"
    assert parse_names(["می\u200cخواهد"], "fa") == {"fa": "می\u200cخواهد"}


def test_a_subject_or_name_stored_before_the_check_loses_its_bidi_controls() -> None:
    field = headers.unstructured("Subject", "Invoice \u202egpj.exe\u2066 now")
    decoded = parse_email(f"{field}To: a@example.org\r\n\r\nx".encode())["Subject"]
    assert decoded == "Invoice gpj.exe now"
    name = headers.address("To", "Jane\u202e Doe\ufdd0", "jane@example.org")
    assert parse_email(f"{name}\r\nx".encode())["To"] == "Jane Doe <jane@example.org>"


# -- contacts --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["mailto:x@example.org", "x@example.org?cc=evil@example.net", "x@example.org, y@example.net",
     "Jane <x@example.org>", "not an address", "x@localhost", "x@@example.org",
     "x@example.org\u202e"],
)  # fmt: skip
def test_contact_emails_must_be_addresses(bare: Settings, address: str) -> None:
    contacts = [{"name": "Jane"}, {"name": "Joe", "email": address}]
    message = refused(bare, release_file(contacts=contacts))
    assert "field 'contacts.1.email'" in message, message


@pytest.mark.parametrize(
    "phone", ["call me", "+33 1 00 00 00 00\x07", "<a href=x>1234</a>", "javascript:1234",
              "12", "+1 555 0100 ext. 1234567", "1" * 25, "+33 1 00\u202e 00"],
)  # fmt: skip
def test_contact_phones_must_look_like_phone_numbers(bare: Settings, phone: str) -> None:
    message = refused(bare, release_file(contacts=[{"name": "Jane", "phone": phone}]))
    assert "field 'contacts.0.phone'" in message, message


def test_contacts_as_people_write_them_are_kept(bare: Settings) -> None:
    contacts = [
        {"name": "Jane", "phone": "+44 (0)20 7946 0000", "email": "Jane.Doe@Example.ORG"},
        {"name": "Joe", "phone": "(555) 010-0199 ext. 12", "email": "presse@exämple.fr"},
        {"name": "Ann", "phone": "01.23.45.67.89"},
    ]
    draft = parse_release(release_file(contacts=contacts), "r.md", bare)
    assert [(c.phone, c.email) for c in draft.meta.contacts] == [
        ("+44 (0)20 7946 0000", "Jane.Doe@example.org"),
        ("(555) 010-0199 ext. 12", "presse@exämple.fr"),
        ("01.23.45.67.89", ""),
    ]


# -- what was stored before the checks --------------------------------------------------------


def stored_before(**fields: Any) -> Release:
    """A release as the database may hold it from before these checks."""
    release = french_release(language="en", slug="old", **fields)
    release.topics = [Topic(id=1, slug="climate", names={"en": "Climate"})]
    release.created_at = release.updated_at = release.published_at = datetime(
        2026, 11, 1, tzinfo=UTC
    )
    release.state = "published"
    return release


def test_links_and_contacts_stored_before_the_checks_never_leave_the_site(bare: Settings) -> None:
    old = stored_before(
        images=[{"src": "//evil.example/a.jpg", "alt": "A", "href": "/\\evil.example/hd.jpg"},
                {"src": "/media/ok.jpg", "alt": "B", "href": "javascript:alert(1)"}],
        attachments=[{"href": "//evil.example/r.pdf", "title": "R"},
                     {"href": "/%2Fevil.example/s.pdf", "title": "S"}],
        contacts=[{"name": "Jane", "email": "x@example.org?cc=spy@evil.example",
                   "phone": "+44 (0)20 7946 0000 ext. 12"}],
    )  # fmt: skip
    page = Newsroom(bare, environment_identity(bare)).release_page(old, [])
    text, html = parts(
        parse_email(
            render_release(old, bare, environment_identity(bare)).message_for(recipient(bare, 1))
        )
    )
    feeds = [
        build_feed([old], bare, lang="en", fmt=fmt).decode() for fmt in ("rss", "atom", "json")
    ]
    documents = [("page", page), ("email", html), ("email text", text)]
    for where, doc in [*documents, *zip(("rss", "atom", "json"), feeds, strict=True)]:
        assert "//evil.example" not in doc and "javascript:" not in doc, where
        assert "%2Fevil" not in doc, where
    assert "https://news.example.org/media/ok.jpg" in page
    for doc in (page, html):
        # The address is shown, and its link writes to that one address, without a copy.
        assert 'href="mailto:x@example.org%3Fcc%3Dspy@evil.example"' in doc
        assert 'href="tel:+442079460000;ext=12"' in doc
    assert json.loads(feeds[2])["items"][0]["image"] == "https://news.example.org/media/ok.jpg"


# -- slugs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Agency signs agreement", "agency-signs-agreement"),
        ("word " * 15 + "abcde", "word-" * 15 + "abcde"),  # 80 characters exactly: not cut
        ("word " * 16 + "x" * 5, "-".join(["word"] * 16)),  # a hyphen right at the limit
        ("word " * 16 + "longer", "-".join(["word"] * 16)),  # the last word does not fit
        ("a" * 100, "a" * 80),  # one word longer than the limit: cut inside
        ("Économie: l'État signe", "economie-l-etat-signe"),
        ("!!!", "release"),
    ],
)
def test_slugs_are_cut_between_words(title: str, slug: str) -> None:
    assert slugify(title) == slug and len(slug) <= SLUG_MAX
