"""Signed link tokens: tampering is refused, purposes do not mix, rotated keys still verify."""

from __future__ import annotations

import pytest
from itsdangerous import TimestampSigner

from distributor.core.config import load_settings
from distributor.core.tokens import (
    InvalidToken,
    Link,
    Purpose,
    make_token,
    read_link,
    read_token,
)

SETTINGS = load_settings(secret_key="new-key old-key")


def test_a_token_names_its_subscriber() -> None:
    token = make_token(SETTINGS, Purpose.UNSUBSCRIBE, 42)
    assert read_token(SETTINGS, Purpose.UNSUBSCRIBE, token) == 42
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path


@pytest.mark.parametrize(
    "issued_at",
    [
        None,
        # Its signature ends in "A": "B" there differs only in base64's unused bits.
        1700000016,
    ],
)
def test_a_flipped_character_is_refused(issued_at: int | None) -> None:
    token = make_token(SETTINGS, Purpose.UNSUBSCRIBE, 42, issued_at=issued_at)
    assert read_token(SETTINGS, Purpose.UNSUBSCRIBE, token) == 42
    for i in range(len(token)):
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]
        with pytest.raises(InvalidToken):
            read_token(SETTINGS, Purpose.UNSUBSCRIBE, flipped)


def test_a_token_for_one_purpose_is_refused_for_another() -> None:
    token = make_token(SETTINGS, Purpose.PREFERENCES, 42)
    with pytest.raises(InvalidToken):
        read_token(SETTINGS, Purpose.UNSUBSCRIBE, token)


def test_the_first_key_signs_and_a_rotated_out_key_still_verifies() -> None:
    old_only = load_settings(secret_key="old-key")
    new_only = load_settings(secret_key="new-key")
    sent_last_year = make_token(old_only, Purpose.UNSUBSCRIBE, 7)
    assert read_token(SETTINGS, Purpose.UNSUBSCRIBE, sent_last_year) == 7
    sent_today = make_token(SETTINGS, Purpose.UNSUBSCRIBE, 8)
    assert read_token(new_only, Purpose.UNSUBSCRIBE, sent_today) == 8
    with pytest.raises(InvalidToken):
        read_token(old_only, Purpose.UNSUBSCRIBE, sent_today)


def test_a_token_with_a_nonce_fits_only_the_row_holding_that_nonce() -> None:
    token = make_token(SETTINGS, Purpose.PREFERENCES, 42, nonce="kF3dQ0vX7pYcZ2aB")
    link = read_link(SETTINGS, Purpose.PREFERENCES, token)
    assert (link.id, link.nonce) == (42, "kF3dQ0vX7pYcZ2aB")
    assert link.fits("kF3dQ0vX7pYcZ2aB")
    assert not link.fits("another-rows-nonce") and not link.fits(None)
    with pytest.raises(InvalidToken):  # the id-only reader takes no nonce token
        read_token(SETTINGS, Purpose.PREFERENCES, token)
    assert all(c.isalnum() or c in "-_." for c in token)  # safe in a URL path


def test_an_id_only_token_fits_only_a_row_without_a_nonce() -> None:
    """Links sent before rows had nonces keep working for those rows, and only those."""
    link = read_link(SETTINGS, Purpose.UNSUBSCRIBE, make_token(SETTINGS, Purpose.UNSUBSCRIBE, 7))
    assert (link.id, link.nonce) == (7, None)
    assert link.fits(None) and not link.fits("kF3dQ0vX7pYcZ2aB")


def test_the_nonce_is_signed_like_the_id() -> None:
    token = make_token(SETTINGS, Purpose.UNSUBSCRIBE, 42, nonce="kF3dQ0vX7pYcZ2aB")
    value, _, rest = token.partition(".")
    for forged in ("42-AAAAAAAAAAAAAAAA", "42", "43-kF3dQ0vX7pYcZ2aB"):
        with pytest.raises(InvalidToken):
            read_link(SETTINGS, Purpose.UNSUBSCRIBE, f"{forged}.{rest}")
    assert value == "42-kF3dQ0vX7pYcZ2aB"


@pytest.mark.parametrize("purpose", list(Purpose))
@pytest.mark.parametrize("nonce", [None, "kF3dQ0vX7pYcZ2aB"])
def test_a_token_is_byte_for_byte_what_itsdangerous_signs_so_links_already_sent_keep_working(
    purpose: Purpose, nonce: str | None
) -> None:
    # make_token derives the signing key once, not per token; the links must not change.
    rotated = SETTINGS.model_copy(update={"secret_key": "newest-key-é " + "older-key"})
    for settings in (SETTINGS, rotated):
        for row_id, issued_at in [(1, 0), (42, 1_700_000_000), (10**17, 2_000_000_123)]:
            value = f"{row_id}-{nonce}" if nonce else str(row_id)
            itsdangerous = TimestampSigner(
                settings.effective_secret_key.split()[0],
                salt=f"distributor.{purpose}",
                key_derivation="hmac",
            )
            itsdangerous.get_timestamp = lambda at=issued_at: at  # type: ignore[method-assign]
            expected = itsdangerous.sign(value).decode("ascii")
            made = make_token(settings, purpose, row_id, issued_at, nonce=nonce)
            assert made == expected
            assert read_link(settings, purpose, made) == Link(row_id, nonce)
