"""What decides whether a release email reaches the inbox and is read there: a Feedback-ID
for Gmail's feedback loop, a clean SpamAssassin score for the DKIM-signed release and
confirmation emails (Debian's spamassassin, local tests only), and a text part that reads
well on its own, for the readers and filters that never look at the HTML."""

from __future__ import annotations

import io
import re
import subprocess
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from distributor.core.config import Settings, load_settings
from distributor.core.models import Release, SubscriptionRequest, Topic
from distributor.mail.compose import Recipient, render_release
from distributor.mail.confirmation import confirmation_message
from distributor.mail.dkim import Signer
from distributor.office.identity import environment_identity
from distributor.releases.media import store_image
from distributor.releases.source import parse_release
from tests.helpers import TEST_SECRET_KEY
from tests.tools import SPAMASSASSIN

SAMPLE = Path(__file__).resolve().parent.parent / "distributor/samples/climate-agreement.en.md"
SITE = "https://news.example.org"
SPAM_GOAL = 1.0  # SpamAssassin calls 5.0 spam; a press release should be nowhere near
# Inline Markdown the text part must never show: [text](url), ![alt](src).
_MARKDOWN_LINK = re.compile(r"!?\[[^\]\n]*\]\(")
_HTML_TAG = re.compile(r"<(?!https?://)/?[A-Za-z!][^>\n]*>")  # <https://…> is a link
_HTML_ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+|#x[0-9A-Fa-f]+);")


@pytest.fixture
def config(tmp_path: Path) -> Settings:
    return load_settings(
        data_dir=tmp_path / "var",
        site_url=SITE,
        secret_key=TEST_SECRET_KEY,
        sender="Agency Press Office <press@example.org>",
        organisation="Agency Press Office",
    )


def sample_release(config: Settings, **overrides: object) -> Release:
    """The English sample release as it is stored once created (id 7)."""
    draft = parse_release(SAMPLE.read_text(), str(SAMPLE), config)
    values: dict[str, object] = {
        "id": 7,
        "slug": "climate-monitoring-agreement",
        "title": draft.meta.title,
        "language": draft.meta.lang,
        "dateline": draft.meta.dateline,
        "lead": draft.lead,
        "body_html": draft.body_html,
        "body_text": draft.body_text,
        "date": draft.meta.date,
        "contacts": [c.model_dump() for c in draft.meta.contacts],
        "images": [],
        "attachments": [],
        "topics": [Topic(slug="climate", names={"en": "Climate", "fr": "Climat"})],
    }
    values.update(overrides)
    return Release(**values)


def with_media(config: Settings) -> Release:
    """The sample with three images (the first uploaded, stored as the API and the form
    store it: its real addresses), two documents (one with a long address) and a Markdown
    image in its body."""
    release = sample_release(config)
    release.body_text += '\n\n![The signing ceremony](/media/ceremony.jpg "At the Agency")\n'
    photo = io.BytesIO()
    Image.new("RGB", (1600, 1000), (40, 90, 140)).save(photo, "JPEG")
    uploaded = store_image(config, photo.getvalue(), "minister.jpg").image_fields()
    release.images = [
        {**uploaded, "alt": "The minister signs", "credit": "Agency / J. Martin"},
        {"src": "/media/s.jpg", "alt": "The signing", "credit": "Agency / J. Martin",
         "href": "/media/s-hd.jpg"},
        {"src": "/media/station.jpg", "alt": "", "credit": "", "href": ""},
    ]  # fmt: skip
    release.attachments = [
        {"href": "/media/agreement.pdf", "title": "The agreement", "type": "application/pdf",
         "length": 1_234_567},
        {"href": "/media/2026/11/technical-backgrounder-climate-monitoring-agreement-final.pdf",
         "title": "Technical backgrounder on the climate monitoring agreement"},
    ]  # fmt: skip
    return release


def reader(subscriber_id: int = 4321) -> Recipient:
    return Recipient(
        subscriber_id,
        f"reporter{subscriber_id}@newsroom.example.com",
        "Jane Reporter",
        f"{SITE}/unsubscribe/{subscriber_id}.Zm9vYmFy.AbCdEfGhIjKlMnOpQrStUvWxYz01234",
        f"{SITE}/preferences/{subscriber_id}.YmFyYmF6.QrStUvWxYzAbCdEfGhIjKlMnOp5678",
    )


def parse(message: bytes) -> EmailMessage:
    parsed = message_from_bytes(message, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


# Feedback-ID ------------------------------------------------------------------------------


def test_release_emails_carry_a_feedback_id(config: Settings) -> None:
    release = sample_release(config)
    first, second = (
        render_release(release, config, environment_identity(config)),
        render_release(release, config, environment_identity(config)),
    )
    ids = {
        parse(rendered.message_for(reader(n)))["Feedback-ID"]
        for rendered in (first, second)
        for n in (1, 2)
    }
    # Gmail's format, CampaignId:CustomerId:MailTypeId:SenderId, the same for every
    # recipient and every rendering of the release.
    assert ids == {"release-7:en:press:example.org"}
    french = render_release(
        sample_release(config, id=8, language="fr"), config, environment_identity(config)
    )
    assert french.feedback_id == "release-8:fr:press:example.org"


# SpamAssassin -----------------------------------------------------------------------------


def spamassassin(message: bytes) -> tuple[float, str]:
    """SpamAssassin's score of ``message`` with local tests only and no Bayes, and the
    rules that fired."""
    out = subprocess.run(
        [str(SPAMASSASSIN.path), "-L", "-t", "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"],
        input=message,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+) .*?tests=([^ ]*)", out, re.M | re.S)
    assert status is not None, out[:2000]
    return float(status.group(1)), " ".join(status.group(2).split())


@pytest.mark.needs("spamassassin")
def test_signed_release_and_confirmation_emails_score_clean(config: Settings) -> None:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = Signer(key, "s2026", "example.org")
    release = render_release(with_media(config), config, environment_identity(config)).message_for(
        reader()
    )
    request = SubscriptionRequest(email="reporter@newsroom.example.com", language="en")
    topics = [Topic(slug="climate", names={"en": "Climate"})]
    link = f"{SITE}/confirm/1-kF3dQ0vX7pYcZ2aB.Y29uZmlybQ.AbCd"
    confirmation = confirmation_message(config, environment_identity(config), request, topics, link)
    for message in (release, confirmation):
        signed = signer.sign(message)
        assert dkim.verify(signed, dnsfunc=lambda name, timeout=5: signer.dns_record.encode())
        score, rules = spamassassin(signed)
        assert score < SPAM_GOAL, f"score {score}: {rules}"


@pytest.mark.needs("spamassassin")
def test_the_email_still_scores_zero_with_a_logo_an_address_and_a_reply_to(
    config: Settings,
) -> None:
    """The identity's additions (a logo in the masthead, an accent colour, the postal
    address and privacy link in the footer, a Reply-To) cost nothing with SpamAssassin."""
    logo = config.data_dir.parent / "logo.png"
    logo.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (240, 60), (11, 83, 148)).save(logo, "PNG")
    branded = config.model_copy(
        update={
            "logo_file": logo,
            "accent_colour": "#0b5394",
            "postal_address": "Agency Press Office\n12 rue de l'Observatoire\n75014 Paris",
            "privacy_url": f"{SITE}/privacy",
            "reply_to": "Press desk <desk@example.org>",
        }
    )
    sender = environment_identity(branded)
    assert sender.logo is not None and sender.reply_to
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = Signer(key, "s2026", "example.org")
    message = render_release(with_media(branded), branded, sender).message_for(reader())
    assert b"Reply-To: Press desk <desk@example.org>" in message
    assert sender.logo.url.encode() in message.replace(b"=\r\n", b"")
    score, rules = spamassassin(signer.sign(message))
    assert score == 0.0, f"score {score}: {rules}"


# The text part ----------------------------------------------------------------------------


def test_the_text_part_reads_well_on_its_own(config: Settings) -> None:
    release = with_media(config)
    rcpt = reader()
    text = parse(
        render_release(release, config, environment_identity(config)).message_for(rcpt)
    ).get_body(("plain",))
    assert text is not None
    body = text.get_content()
    lines = body.splitlines()

    # Nothing of the markup left: no tag, no entity, no Markdown link or image syntax.
    assert not _HTML_TAG.search(body), _HTML_TAG.search(body)
    assert not _HTML_ENTITY.search(body), _HTML_ENTITY.search(body)
    assert not _MARKDOWN_LINK.search(body), _MARKDOWN_LINK.search(body)
    assert ".invalid" not in body  # no placeholder left unsubstituted
    # Every link absolute, so it can be followed from the text alone.
    assert f"<{SITE}/releases/climate-monitoring-agreement>" in body  # was [..](/releases/..)
    assert f"<{SITE}/media/ceremony.jpg>" in body
    for url in re.findall(r"\S+://\S+", body):
        assert url.strip("<>.,;").startswith(("https://", "http://")), url
    # Lines for a terminal or a phone: at most 78 columns, except a link alone on its line
    # (breaking it would break the link); never more than one blank line in a row.
    for line in lines:
        assert len(line) <= 78 or re.fullmatch(r"\S*://\S*", line), line
    assert "\n\n\n" not in body.replace("\r\n", "\n")
    # Headings stand apart, as paragraphs do.
    for index, line in enumerate(lines):
        if line.startswith("#"):
            assert lines[index - 1] == "" and lines[index + 1] == "", line

    # What the reader looks for, in the text alone.
    prose = " ".join(body.split())
    assert release.title in prose and "PARIS, 20 November 2026" in prose
    assert " ".join(release.lead.split()) in prose
    assert "Climate decisions are only as good as the measurements behind them" in prose
    assert "The Agency is an intergovernmental organisation of 22 member states" in prose
    for contact in release.contacts:
        assert all(contact[key] in body for key in ("name", "role", "phone", "email"))
    assert "Photo: Agency / J. Martin" in body
    assert f"High-resolution image: {SITE}/media/s-hd.jpg" in lines
    assert f"The agreement (PDF, 1.2\N{NO-BREAK SPACE}MB): {SITE}/media/agreement.pdf" in lines
    assert f"Read online: {SITE}/releases/climate-monitoring-agreement" in lines
    # The signature block: why they get it, who sends it, then their own links, each on a
    # line of its own.
    assert lines[lines.index("-- ") :] == [
        "-- ",
        "You receive this email because you subscribed to: Climate.",
        config.organisation,
        "Manage your subscription:",
        rcpt.preferences_url,
        "Unsubscribe:",
        rcpt.unsubscribe_url,
    ]


def test_a_long_link_in_the_body_stays_whole_on_its_own_line(config: Settings) -> None:
    long_url = f"{SITE}/media/" + "very-long-file-name-" * 5 + ".pdf"
    release = sample_release(
        config,
        body_text="A corrected figure: 2,400 stations. Details: " + long_url + " — thanks.",
        attachments=[],
    )
    body = render_release(release, config, environment_identity(config)).text_for(reader())
    for line in body.splitlines():
        assert len(line) <= 78 or re.fullmatch(r"\S*://\S*", line), line
    assert long_url in body.splitlines()


def test_reference_links_and_raw_html_read_as_text(config: Settings) -> None:
    """Markdown a press officer may write beyond inline links: reference-style links are
    written out like the others (their definitions dropped); raw HTML blocks, tags and
    comments, which the HTML part renders or sanitises, leave no markup in the text part."""
    source = (
        "The [agreement text][pdf] and the [Agency] site; brackets that are no link: [sic].\n\n"
        '<div class="box">\n<p>A boxed note for the web page only.</p>\n</div>\n\n'
        "A <b>bold</b> claim<!-- internal note -->, and <press@example.org> for questions.\n\n"
        '[pdf]: /media/agreement.pdf "The agreement"\n'
        "[Agency]: https://agency.example/\n\n"
        "Last paragraph.\n"
    )
    release = sample_release(config, body_text=source, attachments=[])
    body = render_release(release, config, environment_identity(config)).text_for(reader())
    prose = " ".join(body.split())
    assert f"The agreement text <{SITE}/media/agreement.pdf> and the Agency " \
           "<https://agency.example/> site; brackets that are no link: [sic]." in prose  # fmt: skip
    assert "A bold claim, and <press@example.org> for questions." in prose
    assert "Last paragraph." in prose
    assert "boxed note" not in body and "internal note" not in body
    assert not _HTML_TAG.search(body.replace("<press@example.org>", "")), body
    assert "[pdf]" not in body and "]:" not in body


def test_an_image_inside_a_link_reads_as_both_links(config: Settings) -> None:
    release = sample_release(
        config, body_text="Our logo: [![The Agency logo](/media/logo.png)](/about).", attachments=[]
    )
    prose = " ".join(
        render_release(release, config, environment_identity(config)).text_for(reader()).split()
    )
    assert f"Our logo: The Agency logo <{SITE}/media/logo.png> <{SITE}/about>." in prose
