"""Fuzzing header building (issue 6): whatever the text — CR, LF, NUL, non-ASCII, "=?",
quotes, very long words — ``distributor.mail.headers`` writes one ASCII field, folded with
CRLF only, lines of at most 78 characters, that the standard library's parser
(``policy.default``) reads back as the same value: no header injection. A Recipient with a
hostile name or address is refused (SubscriberInputError) or its whole message parses with
exactly the fields we wrote. Hypothesis runs derandomised, without an example database."""

from __future__ import annotations

import email
import re
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.parser import Parser

import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from distributor.core.config import Settings, load_settings
from distributor.core.errors import SubscriberInputError
from distributor.core.sanitize import strip_invisible
from distributor.mail import headers
from distributor.mail.compose import Recipient, RenderedRelease, render_release
from distributor.office.identity import environment_identity
from tests.fuzzing import fuzz
from tests.helpers import TEST_SECRET_KEY
from tests.mail_samples import french_release

FUZZ = fuzz(400)
HOSTILE = st.sampled_from(
    ["\r\n", "\r", "\n", "\r\nBcc: evil@example.net", "\nSubject: x", "\x00", "\t", "\x0b",
     "\x1b", "\x7f", "\x85", "\u2028", "\u00a0", "=?", "=?utf-8?b?QQ==?=", "?=", '"', "\\",
     "<", ">", "@", ",", ";", ":", "(", ")", "[", "]", ".", "é", "Ünïcödé", "日本語", "\U0001f600",
     "x" * 100, "é" * 60, " ", "  ", "a", "Jean", "Martin"]
)  # fmt: skip
TEXT = st.one_of(
    st.lists(st.one_of(HOSTILE, st.text(max_size=8)), max_size=12).map("".join),
    st.text(st.characters(codec="utf-8"), max_size=120),
)
_CONTROLS = re.compile(r"[\x00-\x1f\x7f]")


def expected(text: str) -> str:
    """The value a reader should see: controls as spaces, white space runs collapsed, bidi
    controls and noncharacters gone (issue 11)."""
    return " ".join(_CONTROLS.sub(" ", strip_invisible(text)).split())


def assert_one_clean_field(field: str, name: str) -> EmailMessage:
    assert field.isascii(), field
    assert field.endswith("\r\n")
    lines = field[:-2].split("\r\n")
    assert "\r" not in "".join(lines) and "\n" not in "".join(lines), "a bare CR or LF"
    assert lines[0].startswith(f"{name}: ") or lines[0] == f"{name}:"
    for line in lines[1:]:
        assert line.startswith(" "), "a continuation line, not a new field"
    assert all(len(line) <= 78 for line in lines) or max(map(len, lines)) <= 998
    msg = Parser(policy=policy.default).parsestr(field.replace("\r\n", "\n") + "\nbody\n")
    assert isinstance(msg, EmailMessage)
    assert list(msg.keys()) == [name], "exactly one field: nothing injected"
    return msg


def assert_display_name(field: str, parsed: str, want: str) -> None:
    """The display name of the To ``field`` is ``want``, as Python parsed it (``parsed``)
    or, for a run of non-ASCII words in several encoded-words, as RFC 2047 reads it: the
    white space between them is ignored (6.2), which Python's address parser keeps (the
    docstring of ``headers`` says so). Mail programs follow the RFC."""
    unfolded = field.replace("\r\n", "")
    if "?= =?" in unfolded:
        phrase = unfolded[len("To: ") :].rsplit(" <", 1)[0]
        assert str(make_header(decode_header(phrase))) == want, field
    else:
        assert parsed == want, field


@FUZZ
@given(value=TEXT)
@example(value="Subject\r\nBcc: evil@example.net")
@example(value="=?utf-8?b?QQ==?= looks encoded")
@example(value="x" * 200)
@example(value="é" * 100)
@example(value="a \u2028 b \x85 c")
@example(value="Invoice \u202egpj.exe\u2066 \ufdd0x")  # issue 11: stored before refused
def test_unstructured_fields_parse_back_to_the_value(value: str) -> None:
    field = headers.unstructured("Subject", value)
    msg = assert_one_clean_field(field, "Subject")
    assert all(len(line) <= 78 for line in field[:-2].split("\r\n"))
    assert str(msg["Subject"]) == expected(value)


@FUZZ
@given(display=TEXT, local=st.from_regex(r"[A-Za-z0-9._+-]{1,20}", fullmatch=True))
@example(display='Ann "The" Reader, Jr.', local="ann")
@example(display="Jean\r\nBcc: evil@example.net", local="jean")
@example(display="=?utf-8?q?x?= Martin", local="m")
@example(display="Élodie (presse) <fake@evil.example>", local="e")
@example(display="Jane\u202e Doe \U0010ffff", local="jane")
def test_address_fields_parse_back_to_the_name_and_address(display: str, local: str) -> None:
    addr = f"{local}@example.org"
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return  # not a dot-atom; the callers never pass one (Recipient refuses it)
    field = headers.address("To", display, addr)
    msg = assert_one_clean_field(field, "To")
    parsed = msg["To"].addresses
    assert len(parsed) == 1, (field, parsed)
    assert parsed[0].addr_spec == addr
    assert_display_name(field, parsed[0].display_name, expected(display))
    event("non-ASCII name" if not expected(display).isascii() else "ASCII name")


# -- whole messages to hostile recipients ------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, RenderedRelease]:
    settings = load_settings(
        data_dir=tmp_path_factory.mktemp("mail") / "var",
        site_url="https://news.example.org",
        secret_key=TEST_SECRET_KEY,
        sender="Agence <press@example.org>",
    )
    return settings, render_release(french_release(), settings, environment_identity(settings))


EMAIL = st.one_of(
    st.from_regex(r"[a-z0-9.+_-]{1,20}@[a-z0-9-]{1,10}\.(org|com)", fullmatch=True),
    TEXT.map(lambda t: f"{t}@example.org"),
    st.sampled_from(["a@example.org\r\nBcc: x@y.org", "a@exämple.org", "<a@example.org>",
                     "a b@example.org", "a@example.org>", "x" * 250 + "@example.org"]),
)  # fmt: skip
URL = st.one_of(
    st.just("https://news.example.org/unsubscribe/abc"),
    TEXT.map(lambda t: f"https://news.example.org/{t}"),
    st.sampled_from(
        ["https://x.org/>\r\nBcc: y", "javascript:alert(1)", "https://x.org/" + "a" * 950]
    ),
)


@FUZZ
@given(name=TEXT, address=EMAIL, url=URL)
@example(name="Jean\r\nBcc: evil@example.net", address="a@example.org", url="https://x.org/u")
@example(name="x" * 201, address="a@example.org", url="https://x.org/u")
@example(name="é" * 60, address="a@example.org", url="https://x.org/u")
@example(name="Ann", address="a@example.org\r\nBcc: x@y.org", url="https://x.org/u")
@example(name="Ann", address="a@example.org", url="https://x.org/>\r\nBcc: y")
def test_messages_to_hostile_recipients_are_refused_or_well_formed(
    rendered: tuple[Settings, RenderedRelease], name: str, address: str, url: str
) -> None:
    _, release = rendered
    try:
        rcpt = Recipient(subscriber_id=3, email=address, name=name, unsubscribe_url=url,
                         preferences_url=url, delivery_id=5)  # fmt: skip
    except SubscriberInputError as exc:
        assert str(exc).startswith("subscriber 3: ")
        event("refused")
        return
    event("sent")
    data = release.message_for(rcpt)
    # ASCII, but for an internationalised address, written as it is (RFC 6532).
    assert data.isascii() == address.isascii()
    assert data.replace(address.encode(), b"").isascii()
    event("ASCII message" if address.isascii() else "UTF-8 address")
    head = data.split(b"\r\n\r\n", 1)[0]
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    msg = email.message_from_string(data.decode(), policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects
    before = [k for k in msg.keys()]
    assert before.count("To") == 1 and "Bcc" not in before and "Cc" not in before
    assert msg["To"].addresses[0].addr_spec == address
    to_field = re.search(rb"^To:.*?\r\n(?! )", head + b"\r\n", re.M | re.S)
    assert to_field is not None
    assert_display_name(to_field.group(0).decode(), msg["To"].addresses[0].display_name,
                        expected(name))  # fmt: skip
    assert str(msg["List-Unsubscribe"]) == f"<{url}>"
