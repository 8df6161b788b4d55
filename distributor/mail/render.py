"""The release email's two bodies, rendered once: Jinja2 (templates/email/release.html and
release.txt) with CSS inlined into the HTML by css-inline.

The per-recipient links are rendered as the placeholder strings the caller passes; the
caller substitutes them per recipient (see :mod:`distributor.mail.compose`).
"""

from __future__ import annotations

import re
import textwrap
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import css_inline
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from distributor.core.config import Settings
from distributor.core.formats import document_label, file_details, long_date
from distributor.core.identity import Identity
from distributor.core.models import Release
from distributor.core.sanitize import absolute_urls, parse_markdown
from distributor.core.urls import absolute_link, mailto_href, release_url, tel_href
from distributor.mail.labels import labels_for

TEXT_WIDTH = 76
_INLINER = css_inline.CSSInliner(load_remote_stylesheets=False)
# A list item or quote line: wrapped under its own marker.
_ITEM = re.compile(r"^(?:[-*+] |\d+[.)] |> ?)")
# The spaces French puts before ; : ! ? » and after «, which a line must not break at.
_FRENCH_SPACE = re.compile(r" +(?=[;:!?»])|(?<=«) +")
_GLUE = "\x00"  # stands for such a space while wrapping
# An inline Markdown link or image: [text](url) or ![alt](url "title").
# The text never holds a bracket, so that each match attempt stops at the next one: linear
# on hostile input ("![" repeated); an image inside a link is resolved first, then the link.
_MARKDOWN_LINK = re.compile(r"!?\[([^\[\]\n]*)\]\(<?([^()\s<>]+)>?(?:\s+\"[^\"\n]*\")?\)")
# [text][label], [label][] and [label]: resolved against the reference definitions.
_REFERENCE_LINK = re.compile(r"(!?)\[([^\[\]\n]+)\](?:\[([^\[\]\n]*)\])?")
# An HTML tag or comment (not an autolink such as <https://…> or <press@example.org>).
_INLINE_HTML = re.compile(r"<!--[^\n]*?-->|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>\n]*)?/?>")
_BLANK_LINES = re.compile(r"\n\s*\n(?:\s*\n)+")
# Lines that Markdown gives a meaning to: joining them with the next would change it.
_STRUCTURAL = re.compile(r"^\s*(?:[-*+]\s|\d+[.)]\s|#|\||>|```|~~~| {4}|\t)|^\s*[-=*_]{3,}\s*$")


@lru_cache(maxsize=8)
def environment(templates_dir: Path) -> Environment:
    """The Jinja2 environment for ``templates_dir`` (one per directory, built once):
    autoescaping for HTML (and anything unknown), none for ``.txt``; undefined names fail."""
    env = Environment(
        loader=FileSystemLoader(templates_dir),
        autoescape=select_autoescape(("html", "xml"), ("txt",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["wrap"] = wrap_text
    return env


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Plain text (or Markdown source) with its prose paragraphs wrapped at ``width``.

    Lines Markdown gives a meaning to are never joined: list items and quotes are wrapped
    under their marker, tables, headings and code are kept as they are, and so are words longer
    than ``width`` (URLs), so nothing is broken for copy and paste.
    """
    out: list[str] = []
    paragraph: list[str] = []
    fenced = False

    def flush() -> None:
        if paragraph:
            out.append(_fill(" ".join(paragraph), width))
            paragraph.clear()

    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        stripped = line.strip()
        fence = stripped.startswith(("```", "~~~"))
        if fenced or fence or not stripped or _STRUCTURAL.match(line):
            flush()
            item = _ITEM.match(line)
            if item and not fenced and not fence and len(line) > width:
                out.append(_wrap_item(line, item.group(0), width))
            else:
                out.append(line.rstrip())
            fenced ^= fence
        elif line.endswith(("  ", "\\")):  # a Markdown hard line break ends the line here
            paragraph.append(stripped)
            flush()
        else:
            paragraph.append(stripped)
    flush()
    return "\n".join(out).strip("\n")


def _fill(text: str, width: int, marker: str = "", indent: str = "") -> str:
    """``text`` wrapped at ``width``, never inside a word or a URL, and never before French
    high punctuation or inside guillemets ("partenaires ;" stays on one line)."""
    glued = text
    if _GLUE not in text:
        glued = _FRENCH_SPACE.sub(lambda m: m.group(0).replace(" ", _GLUE), text)
    wrapped = textwrap.fill(
        glued,
        width,
        initial_indent=marker,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapped.replace(_GLUE, " ")


def _wrap_item(line: str, marker: str, width: int) -> str:
    """A long list item or quote line wrapped under its own marker ("- ", "1. ", "> ")."""
    indent = "> " if marker.lstrip().startswith(">") else " " * len(marker)
    return _fill(line[len(marker) :], width, marker, indent)


def _plain_markdown(markdown: str, base: str) -> str:
    """Markdown source as a text part shows it: links written out (:func:`_plain_links`,
    reference-style ones too, their definitions dropped), raw HTML blocks dropped and HTML
    tags and comments removed from the text around them. Emphasis, headings and lists stay
    as Markdown writes them: plain text conventions that read well."""
    tokens, env = parse_markdown(markdown)
    references: dict[str, dict[str, Any]] = env.get("references", {})
    dropped: set[int] = set()
    for spans in [r.get("map") for r in references.values()] + [
        t.map for t in tokens if t.type == "html_block"
    ]:
        if spans:
            dropped.update(range(*spans))
    if dropped:
        kept = (line for n, line in enumerate(markdown.split("\n")) if n not in dropped)
        markdown = _BLANK_LINES.sub("\n\n", "\n".join(kept))
    text = _plain_links(markdown, base)

    def resolve(match: re.Match[str]) -> str:
        shown, label = match.group(2), match.group(3) or match.group(2)
        target = references.get(" ".join(label.split()).upper())
        if target is None:  # brackets that are not a link
            return match.group(0)
        return f"{shown} <{urljoin(base + '/', target['href'])}>"

    if references:
        text = _REFERENCE_LINK.sub(resolve, text)
    return _INLINE_HTML.sub("", text)


def _plain_links(markdown: str, base: str) -> str:
    """Markdown source with inline links and images written out for a text part:
    ``[text](/path)`` becomes ``text <https://site/path>`` (absolute, so it can be followed)."""

    def plain(match: re.Match[str]) -> str:
        text, url = match.group(1), match.group(2)
        absolute = urljoin(base + "/", url)
        return f"{text} <{absolute}>" if text else f"<{absolute}>"

    for _ in range(3):  # [![alt](image)](link): the image, then the link around it
        markdown, found = _MARKDOWN_LINK.subn(plain, markdown)
        if not found:
            break
    return markdown


def _web_url(url: str, base: str) -> str | None:
    """A release's link (``urls.absolute_link``) made absolute against ``base``; None for
    what is not one (``//host``, ``javascript:``, stored before the checks)."""
    return absolute_link(base, url)


def _images(release: Release, base: str) -> list[dict[str, str]]:
    """The release's images with absolute http(s) URLs; the full-size link defaults to src."""
    images = []
    for image in release.images or []:
        src = _web_url(image["src"], base) if image.get("src") else None
        if src is None:
            continue
        href = _web_url(image["href"], base) if image.get("href") else None
        small = _web_url(image["email_src"], base) if image.get("email_src") else None
        images.append(
            {
                "src": src,
                "email_src": small or src,
                "href": href or src,
                "alt": image.get("alt") or "",
                "credit": image.get("credit") or "",
            }
        )
    return images


def _attachments(release: Release, base: str) -> list[dict[str, str]]:
    """The release's documents as links (absolute http(s) URLs, title, "PDF, 1.2 MB"):
    an email links its documents, it never carries them."""
    documents = []
    for item in release.attachments or []:
        href = _web_url(item["href"], base) if item.get("href") else None
        if href is not None:
            details = file_details(item, release.language)
            documents.append({"href": href, "title": document_label(item), "details": details})
    return documents


def contact_lines(release: Release) -> list[dict[str, str]]:
    """The press contacts, every field a string, with ``tel`` and ``mailto`` the links to
    the phone number and the address."""
    contacts = []
    for contact in release.contacts or []:
        phone = contact.get("phone") or ""
        email = contact.get("email") or ""
        contacts.append(
            {
                "name": contact.get("name") or "",
                "role": contact.get("role") or "",
                "phone": phone,
                "tel": tel_href(phone),
                "email": email,
                "mailto": mailto_href(email),
            }
        )
    return contacts


def context(
    release: Release,
    settings: Settings,
    identity: Identity,
    unsubscribe_url: str,
    preferences_url: str,
    page_url: str | None = None,
    embargo: str = "",
) -> dict[str, Any]:
    """The variables both templates see (documented at the top of each template), the
    identity's (``Identity.brand``) in the release's language among them; ``page_url`` is
    where the email says the release can be read (default: its public page); ``embargo``,
    when the embargo of an advance copy lifts, written out (empty: not one)."""
    labels = labels_for(release.language)
    topics = [topic.name(release.language) for topic in release.topics]
    brand = identity.brand(release.language)
    subscribed = (
        labels["subscribed_to"].format(topics=", ".join(topics))
        if topics
        else labels["subscribed_any"].format(organisation=brand["organisation"])
    )
    return {
        **brand,
        "lang": release.language,
        "labels": labels,
        "site_url": settings.site_url,
        "title": " ".join(release.title.split()),
        "dateline": release.dateline,
        # The day in the press office's zone, as the release's page dates it.
        "date": long_date(release.date, release.language, settings.zone),
        "lead": release.lead,
        "body_html": Markup(absolute_urls(release.body_html, settings.site_url)),  # noqa: S704 - sanitised on the way in
        "body_text": _plain_markdown(release.body_text, settings.site_url),
        "images": _images(release, settings.site_url),
        "attachments": _attachments(release, settings.site_url),
        "contacts": contact_lines(release),
        "topics": topics,
        "subscribed_to": subscribed,
        "release_url": page_url or release_url(settings, release.slug),
        "unsubscribe_url": unsubscribe_url,
        "preferences_url": preferences_url,
        "embargo": embargo,
    }


def render_pair(settings: Settings, name: str, values: dict[str, Any]) -> tuple[str, str]:
    """The text and HTML bodies of the email kind ``name`` (``templates/email/NAME.txt`` and
    ``NAME.html``) rendered with ``values``, the HTML's CSS inlined: the one place every kind
    of email is rendered."""
    env = environment(settings.templates_dir)
    text = env.get_template(f"email/{name}.txt").render(values)
    html = _INLINER.inline(env.get_template(f"email/{name}.html").render(values))
    return text, html


def render_bodies(
    release: Release,
    settings: Settings,
    identity: Identity,
    unsubscribe_url: str,
    preferences_url: str,
    page_url: str | None = None,
    embargo: str = "",
) -> tuple[str, str]:
    """The text and HTML bodies of ``release`` (CSS inlined) as from ``identity``, with the
    given URLs as links (``page_url``, ``embargo``: see :func:`context`)."""
    values = context(
        release, settings, identity, unsubscribe_url, preferences_url, page_url, embargo
    )
    return render_pair(settings, "release", values)
