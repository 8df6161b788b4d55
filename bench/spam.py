"""How SpamAssassin scores the emails distributor sends: a release email (the English sample
release, and the French release of bench/compose.py with its images), a correction notice
and the confirmation email, each DKIM-signed (RSA-2048) as a worker would send it.

Run: ``.venv/bin/python bench/spam.py [--show]``. Needs Debian's ``spamassassin`` (the rules
ship in the package; no sa-update). It runs with local tests only (``-L``: no DNS, no
blocklists, so no DKIM key lookup either) and without Bayes (a receiver's Bayes database
is trained on its own mail), and prints each score and the rules that fired. Goal: below
1.0 (5.0 is "spam"). Asserts nothing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dkim
from compose import make_release
from cryptography.hazmat.primitives.asymmetric import rsa

from distributor.core.config import Settings, load_settings
from distributor.core.models import Release, SubscriptionRequest, Topic
from distributor.mail.compose import Recipient, render_release
from distributor.mail.confirmation import confirmation_message
from distributor.mail.correction import render_notice
from distributor.mail.dkim import Signer
from distributor.office.identity import environment_identity
from distributor.releases.source import parse_release

SPAMASSASSIN = "spamassassin"
GOAL = 1.0
SAMPLE = Path(__file__).resolve().parent.parent / "distributor/samples/climate-agreement.en.md"
# Local tests only, no Bayes, nothing written to ~/.spamassassin.
SA_ARGS = ["-L", "-t", "-x", "--cf=use_bayes 0", "--cf=bayes_auto_learn 0"]
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class Score:
    score: float
    rules: list[tuple[float, str, str]]  # points, rule, description

    def describe(self) -> str:
        return ", ".join(f"{name} {points:+.1f}" for points, name, _ in self.rules)


def spamassassin_score(message: bytes) -> Score:
    """The score SpamAssassin gives ``message`` with local tests only, and the rules that
    fired (from its report)."""
    out = subprocess.run(
        [SPAMASSASSIN, *SA_ARGS], input=message, capture_output=True, check=True, timeout=120
    ).stdout.decode("utf-8", "replace")
    status = re.search(r"^X-Spam-Status: \w+, score=(-?[\d.]+)", out, re.M)
    if status is None:
        raise RuntimeError("no X-Spam-Status in spamassassin's output")
    rules: list[tuple[float, str, str]] = []
    report = out.split("---- ---------------------- ", 1)[-1].splitlines()[1:]
    for line in report:
        match = _RULE.match(line)
        if match:
            rules.append((float(match.group(1)), match.group(2), match.group(3).strip()))
        elif line.startswith(" " * 20) and rules:  # a description's continuation
            points, name, text = rules[-1]
            rules[-1] = (points, name, text + " " + line.strip())
        elif not line.strip():
            break
    return Score(float(status.group(1)), rules)


def settings(data_dir: Path) -> Settings:
    return load_settings(
        data_dir=data_dir,
        site_url="https://news.example.org",
        secret_key="bench-secret-key",  # noqa: S106 - a throwaway key for links nobody follows
        sender="Agency Press Office <press@example.org>",
        organisation="Agency Press Office",
    )


def sample_release(config: Settings) -> Release:
    """The English sample release (distributor/samples) as it is stored once created."""
    draft = parse_release(SAMPLE.read_text(), str(SAMPLE), config)
    meta = draft.meta
    return Release(
        id=7,
        slug=meta.slug or "climate-monitoring-agreement",
        title=meta.title,
        language=meta.lang,
        dateline=meta.dateline,
        lead=draft.lead,
        body_html=draft.body_html,
        body_text=draft.body_text,
        date=meta.date,
        contacts=[c.model_dump() for c in meta.contacts],
        images=[i.model_dump() for i in meta.images],
        attachments=[a.model_dump() for a in meta.attachments],
        topics=[Topic(slug="climate", names={"en": "Climate", "fr": "Climat"})],
    )


def recipient(config: Settings) -> Recipient:
    return Recipient(
        4321,
        "jane.reporter@newsroom.example.com",
        "Jane Reporter",
        f"{config.site_url}/unsubscribe/4321.Zm9vYmFy.AbCdEfGhIjKlMnOpQrStUvWx",
        f"{config.site_url}/preferences/4321.YmFyYmF6.QrStUvWxYzAbCdEfGhIjKlMn",
    )


def messages(config: Settings) -> list[tuple[str, bytes]]:
    """(label, unsigned message) of each email scored."""
    rcpt = recipient(config)
    english = render_release(sample_release(config), config, environment_identity(config))
    french = render_release(make_release(), config, environment_identity(config))
    notice = render_notice(
        sample_release(config),
        config,
        environment_identity(config),
        datetime(2026, 11, 21, 10, tzinfo=UTC),
    )
    request = SubscriptionRequest(email=rcpt.email, language="en")
    topics = [Topic(slug="climate", names={"en": "Climate"})]
    link = f"{config.site_url}/confirm/4321-kF3dQ0vX7pYcZ2aB.Y29uZmlybQ.AbCdEfGhIjKlMnOp"
    confirm = confirmation_message(config, environment_identity(config), request, topics, link)
    return [
        ("release email (en, sample)", english.message_for(rcpt)),
        ("release email (fr, 2 images)", french.message_for(rcpt)),
        ("correction notice (en)", notice.message_for(rcpt)),
        ("confirmation email (en)", confirm),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--show", action="store_true", help="also print each signed message")
    args = parser.parse_args()
    if shutil.which(SPAMASSASSIN) is None:
        sys.exit("spamassassin is not installed (Debian: apt-get install -y spamassassin)")
    version = subprocess.run(
        [SPAMASSASSIN, "-V"], capture_output=True, text=True, check=True
    ).stdout.splitlines()[0]
    config = settings(Path("/tmp/distributor-bench-spam"))
    signer = Signer(
        rsa.generate_private_key(public_exponent=65537, key_size=2048), "s1", "example.org"
    )

    def dns(name: bytes, timeout: int = 5) -> bytes | None:
        return signer.dns_record.encode() if name.decode().rstrip(".") == signer.dns_name else None

    started = time.perf_counter()
    rows = []
    for label, message in messages(config):
        signed = signer.sign(message)
        verified = dkim.verify(signed, dnsfunc=dns)
        if args.show:
            print(signed.decode("ascii", "replace"))
        rows.append((label, f"{len(signed) / 1024:.1f} KB", verified, spamassassin_score(signed)))
    print(f"SpamAssassin scores — {version}, local tests only (-L), no Bayes; "
          f"goal < {GOAL} (spam at 5.0); {time.perf_counter() - started:.0f} s")  # fmt: skip
    print()
    width = max(len(r[0]) for r in rows)
    print(f"{'message, DKIM-signed':<{width}}  {'size':>7}  {'dkimpy':<8}  {'score':>5}  goal")
    for label, size, verified, result in rows:
        mark = "✓" if result.score < GOAL else "✗"
        dkim_ok = "verifies" if verified else "FAILS"
        print(f"{label:<{width}}  {size:>7}  {dkim_ok:<8}  {result.score:5.1f}  {mark}")
    print()
    print("rules that fired:")
    described: dict[str, tuple[float, str]] = {}
    for label, _, _, result in rows:
        print(f"  {label}: {result.describe() or 'none'}")
        for points, name, text in result.rules:
            described[name] = (points, text)
    print()
    for name, (points, text) in sorted(described.items()):
        print(f"  {points:+5.1f}  {name:<24} {text}")
    print()
    print("DKIM: with -L SpamAssassin fetches no key and runs no DKIM rule (no DKIM_VALID bonus,")
    print("no penalty); dkimpy's verifier checked each signature above.")


if __name__ == "__main__":
    main()
