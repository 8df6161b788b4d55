"""Per-message cost of composing a release email: the naive path (render, inline CSS and build
an ``email.message.EmailMessage`` for every recipient) against ``RenderedRelease.message_for``
(render once, personalise per recipient), and the latter with a DKIM signature (RSA-2048,
relaxed/relaxed): dkimpy as shipped against ``distributor.mail.dkim.Signer``, in the same run.
Every signature the Signer made in the timed loop is then checked with dkimpy's verifier.

Run: ``.venv/bin/python bench/compose.py [--messages N]``. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import TypeVar

import dkim
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from distributor.core.config import Settings, load_settings
from distributor.core.models import Release, Topic
from distributor.core.sanitize import markdown_to_html
from distributor.mail.compose import Recipient, render_release
from distributor.mail.dkim import SIGNED_HEADERS, Signer
from distributor.mail.render import render_bodies
from distributor.office.identity import environment_identity

PARAGRAPHS = [
    "L'Agence nationale d'observation du climat a signé ce jeudi à Paris un accord de "
    "coopération avec sept agences européennes partenaires. L'accord organise, pour la "
    "période 2027–2031, le partage des données satellitaires et des mesures au sol, la "
    "mise en commun des moyens de calcul et la formation des équipes.",
    "« Aucune agence ne peut, seule, suivre un système aussi complexe que le climat "
    "européen », a déclaré la directrice générale, Mme Hélène Garnier, lors de la "
    "cérémonie de signature. « Cet accord nous permet de croiser nos observations et de "
    "publier plus tôt des indicateurs fiables pour les décideurs publics. »",
    "Les partenaires s'engagent à publier leurs jeux de données sous licence ouverte dans "
    "un délai de trois mois après leur validation, à harmoniser leurs méthodes de "
    "contrôle qualité et à documenter les incertitudes de mesure selon un référentiel "
    "commun. Un comité scientifique de douze membres veillera à la cohérence des travaux.",
    "Le budget total du programme s'élève à 148 millions d'euros sur cinq ans, dont 41 "
    "millions apportés par l'Agence. Il finance notamment la modernisation de 320 stations "
    "de mesure, le déploiement de capteurs océaniques au large des côtes atlantiques et la "
    "création d'un centre de calcul partagé à Toulouse.",
    "Les premières données communes seront publiées au printemps 2027 sur le portail "
    "ouvert de l'Agence. Les journalistes peuvent dès à présent consulter le dossier de "
    "presse, les biographies des signataires et la carte interactive des stations sur "
    "[l'espace presse](/presse/accord-climat-2026).",
]
BODY = "\n\n".join(
    [
        *PARAGRAPHS,
        "## Les engagements de l'accord",
        "- partage des données brutes et validées entre les huit agences partenaires ;\n"
        "- calendrier commun de publication des indicateurs climatiques annuels ;\n"
        "- programme d'échange de 40 ingénieurs et chercheurs par an ;\n"
        "- audit indépendant des méthodes de mesure tous les deux ans.",
        *PARAGRAPHS[1:4],
        "## À propos de l'Agence",
        *PARAGRAPHS[:3],
    ]
)
T = TypeVar("T")
PLACEHOLDER_URLS = ("https://news.example.org/unsubscribe/{}", "https://news.example.org/p/{}")


def make_release() -> Release:
    """A realistic French release: ~2,000 words of body, two images, two contacts."""
    return Release(
        id=1042,
        slug="accord-cooperation-climat",
        title="L'Agence signe un accord de coopération européen sur la surveillance du climat",
        language="fr",
        dateline="Paris",
        lead="Huit agences européennes mettent en commun leurs données, leurs moyens de calcul "
        "et leurs équipes pour publier plus tôt des indicateurs climatiques fiables.",
        body_html=markdown_to_html(BODY),
        body_text=BODY,
        date=datetime(2026, 11, 20, 8, tzinfo=UTC),
        contacts=[
            {
                "name": "Jeanne Dupont",
                "role": "Attachée de presse",
                "phone": "+33 1 00 00 00 00",
                "email": "presse@example.org",
            },
            {
                "name": "Karim Benali",
                "role": "Responsable des relations médias",
                "phone": "+33 6 00 00 00 00",
                "email": "medias@example.org",
            },
        ],
        images=[
            {
                "src": "/media/signature.jpg",
                "alt": "Signature de l'accord à Paris",
                "credit": "Agence / J. Martin",
                "href": "/media/signature-hd.jpg",
            },
            {
                "src": "/media/station.jpg",
                "alt": "Une station de mesure",
                "credit": "Agence",
                "href": "/media/station-hd.jpg",
            },
        ],
        topics=[
            Topic(slug="climat", names={"fr": "Climat", "en": "Climate"}),
            Topic(slug="international", names={"fr": "International"}),
        ],
    )


def recipients(count: int) -> list[Recipient]:
    unsubscribe, preferences = PLACEHOLDER_URLS
    return [
        Recipient(
            i,
            f"journaliste{i}@redaction.example.com",
            f"Journaliste Numéro {i}",
            unsubscribe.format(f"tok{i:08d}.AbCdEf-gh_IjKlMnOp"),
            preferences.format(f"tok{i:08d}.QrStUv-wx_YzAbCdEf"),
        )
        for i in range(count)
    ]


def naive(release: Release, settings: Settings, rcpt: Recipient) -> bytes:
    """What the design replaces: everything redone per recipient with the stdlib."""
    text, html = render_bodies(
        release,
        settings,
        environment_identity(settings),
        rcpt.unsubscribe_url,
        rcpt.preferences_url,
    )
    msg = EmailMessage()
    msg["From"] = settings.sender
    msg["To"] = f"{rcpt.name} <{rcpt.email}>"
    msg["Subject"] = release.title
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["Message-ID"] = f"<release-{release.id}.{rcpt.subscriber_id}@{settings.sender_domain}>"
    msg["List-Unsubscribe"] = f"<{rcpt.unsubscribe_url}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg.set_content(text, cte="quoted-printable")
    msg.add_alternative(html, subtype="html", cte="quoted-printable")
    return msg.as_bytes(policy=policy.SMTP)


def measure(label: str, fn: Callable[[T], bytes], items: list[T], *, sized: bool = True) -> float:
    """Run ``fn`` over ``items`` (after a warm-up) and print the per-message cost in ms (and
    the size of what it returns, when that is a message)."""
    for item in items[:20]:
        fn(item)
    start = time.perf_counter()
    size = 0
    for item in items:
        size += len(fn(item))
    elapsed = time.perf_counter() - start
    per = elapsed / len(items) * 1000
    print(
        f"{label:<34} {per:8.3f} ms/message {len(items) / elapsed:10,.0f} messages/s"
        + (f"   ({size / len(items) / 1024:.1f} KB/message)" if sized else "")
    )
    return per


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    args = parser.parse_args()
    settings = load_settings(
        site_url="https://news.example.org",
        secret_key="bench",  # noqa: S106 - a throwaway key for links nobody follows
        sender="Agence nationale d'observation du climat <presse@example.org>",
        organisation="Agence nationale d'observation du climat",
        data_dir=Path("/tmp/distributor-bench"),
    )
    release = make_release()
    rcpts = recipients(args.messages)

    for label in ("render_release, cold (compiles)", "render_release, warm"):
        start = time.perf_counter()
        rendered = render_release(release, settings, environment_identity(settings))
        print(f"{label:<34} {(time.perf_counter() - start) * 1000:8.3f} ms (once per release)")
    naive_cost = measure(
        "(a) naive: render + EmailMessage",
        lambda r: naive(release, settings, r),
        rcpts[: max(200, args.messages // 10)],
    )
    fast_cost = measure("(b) RenderedRelease.message_for", rendered.message_for, rcpts)
    print(f"{'ratio (a)/(b)':<34} {naive_cost / fast_cost:8.1f}x")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = Signer(key, "bench", "example.org")
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    names = list(SIGNED_HEADERS + SIGNED_HEADERS)  # the same fields, From oversigned

    def dkimpy(message: bytes) -> bytes:
        signature = dkim.sign(
            message,
            b"bench",
            b"example.org",
            pem,
            canonicalize=(b"relaxed", b"relaxed"),
            include_headers=names,
        )
        return bytes(signature) + message

    signed: list[bytes] = []

    def ours(message: bytes) -> bytes:
        signed.append(signer.sign(message))
        return signed[-1]

    signing = rcpts[:1000]
    print()
    shipped = measure(
        "(c) message_for + dkimpy as shipped",
        lambda r: dkimpy(rendered.message_for(r)),
        signing[: max(100, len(signing) // 10)],
    )
    fast = measure(
        "(d) message_for + DKIM Signer", lambda r: ours(rendered.message_for(r)), signing
    )
    print(f"{'ratio (c)/(d)':<34} {shipped / fast:8.1f}x")
    messages = [rendered.message_for(r) for r in signing]
    digest = hashlib.sha256(b"x").digest()
    sign_only = measure("    of which the signature", signer.sign, messages, sized=False)
    rsa_only = measure(
        "    of which RSA-2048 (OpenSSL)",
        lambda m: key.sign(digest, padding.PKCS1v15(), Prehashed(hashes.SHA256())),
        messages,
        sized=False,
    )
    print(f"{'    the rest: canonicalise, hash':<34} {sign_only - rsa_only:8.3f} ms/message")

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return signer.dns_record.encode() if name.decode().rstrip(".") == signer.dns_name else None

    start = time.perf_counter()
    good = sum(dkim.verify(message, dnsfunc=dns) for message in signed)
    print(
        f"{'dkimpy verifies (d)':<34} {good:,} of {len(signed):,} signatures "
        f"({time.perf_counter() - start:.1f} s)"
    )


if __name__ == "__main__":
    main()
