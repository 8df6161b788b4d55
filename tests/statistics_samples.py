"""What the statistics tests share: a published release with an image and a document, the
site built; what its requests carry that must never be stored; the counts as stored."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from distributor.core.config import Settings
from distributor.core.db import session_scope
from distributor.core.models import PublicStat, Release
from distributor.releases.documents import store_document
from distributor.releases.lifecycle import mark_published
from distributor.releases.media import store_image
from distributor.site.builder import regenerate_site
from tests.helpers import add_topics, make_release, png

# What the requests carry that must never be stored: an unusual loopback address, a user
# agent, a cookie, a referrer and a query string, each with a marker no code writes.
CLIENT_IP = "127.0.0.77"
MARKERS = ("127.0.0.77", "ua-7f3a", "cookie-7f3a", "referrer-7f3a", "query-7f3a")
HEADERS = {
    "User-Agent": "StatsProbe/9.9 (ua-7f3a)",
    "Cookie": "session=cookie-7f3a",
    "Referer": "https://referrer-7f3a.example/",
}
PDF = (
    b"%PDF-1.4\n1 0 obj <</Type /Catalog /Pages 2 0 R>> endobj\n"
    b"2 0 obj <</Type /Pages /Kids [3 0 R] /Count 1>> endobj\n"
    b"3 0 obj <</Type /Page /Parent 2 0 R /MediaBox [0 0 595 842]>> endobj\n"
    b"trailer <</Root 1 0 R>>\n%%EOF\n"
)


@dataclass
class Site:
    settings: Settings
    release_id: int
    page: str  # the release page's URL path
    image: str  # the full-size image's
    email_image: str  # the email's version (never counted)
    document: str


def published_with_files(settings: Settings) -> Site:
    """A release with an image and a document, published, the site built."""
    add_topics(settings, "climate")
    release = make_release(settings)
    image = store_image(settings, png(40, 30), "photo.png")
    document = store_document(settings, PDF, "Backgrounder.pdf")
    with session_scope(settings) as session:
        row = session.get_one(Release, release.id)
        row.images = [{**image.image_fields(), "alt": "A photo", "credit": "Agency"}]
        row.attachments = [document.attachment_fields("Backgrounder")]
        mark_published(session, release.id)
    regenerate_site(settings)
    return Site(
        settings, release.id, f"/releases/{release.slug}", image.full.path, image.email.path,
        document.path,
    )  # fmt: skip


def stored_counts(settings: Settings) -> dict[str, int]:
    with session_scope(settings) as session:
        rows = session.execute(select(PublicStat.kind, PublicStat.subject, PublicStat.count))
        totals: dict[str, int] = {}
        for kind, subject, n in rows:
            totals[f"{kind}:{subject}"] = totals.get(f"{kind}:{subject}", 0) + n
        return totals
