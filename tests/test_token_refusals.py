"""What a refused link says. Every link in an email is a signed token; one that was altered,
cut, made for another purpose or is past its age is refused with a message naming the link
and why, and the unsubscribe page shows that message to the person who clicked. (Found by
``make mutate``: messages replaced by ``None`` and a dropped ``max_age`` left every test
green.)"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from distributor.core.config import Settings, load_settings
from distributor.core.tokens import (
    ExpiredToken,
    InvalidToken,
    Purpose,
    make_token,
    read_link,
    read_token,
    signer,
)
from distributor.web import create_app

SETTINGS = load_settings(secret_key="new-key old-key")
NOT_VALID = "this unsubscribe link is not valid"


def flipped(token: str, i: int) -> str:
    """``token`` with its character ``i`` changed."""
    return token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1 :]


def test_each_kind_of_refusal_names_the_link_and_why() -> None:
    """Altered signature, a spelling of it that was never signed, a genuine signature over
    something that is not an id, and a nonce where only an id may be: each says the link
    "is not valid"; a genuine link past its age says it "has expired"."""
    genuine = make_token(SETTINGS, Purpose.UNSUBSCRIBE, 42, issued_at=1700000016)
    assert genuine.endswith("A")  # "B" there differs only in base64's unused bits
    refused = {
        "altered": flipped(genuine, 0),
        "never signed in this spelling": genuine[:-1] + "B",
        "not an id": signer(SETTINGS, Purpose.UNSUBSCRIBE).sign("abc").decode(),
    }
    for why, token in refused.items():
        with pytest.raises(InvalidToken) as refusal:
            read_link(SETTINGS, Purpose.UNSUBSCRIBE, token)
        assert str(refusal.value) == NOT_VALID, why

    with_nonce = make_token(SETTINGS, Purpose.UNSUBSCRIBE, 42, nonce="n0nce-of-row")
    with pytest.raises(InvalidToken) as refusal:
        read_token(SETTINGS, Purpose.UNSUBSCRIBE, with_nonce)
    assert str(refusal.value) == NOT_VALID

    with pytest.raises(ExpiredToken) as expired:
        read_link(SETTINGS, Purpose.CONFIRM, make_token(SETTINGS, Purpose.CONFIRM, 7, 1), 60)
    assert str(expired.value) == "this confirm link has expired"


def test_an_id_only_token_past_its_age_is_refused() -> None:
    """``read_token`` keeps ``max_age`` as ``read_link`` does: a day-old link with an hour's
    validity is expired, a fresh one is read."""
    day_old = make_token(SETTINGS, Purpose.CONFIRM, 7, issued_at=1)
    with pytest.raises(ExpiredToken):
        read_token(SETTINGS, Purpose.CONFIRM, day_old, max_age=3600)
    assert (
        read_token(SETTINGS, Purpose.CONFIRM, make_token(SETTINGS, Purpose.CONFIRM, 7), 3600) == 7
    )


def test_the_unsubscribe_page_says_an_altered_link_is_not_valid(
    sqlite_settings: Settings,
) -> None:
    """Someone whose mail client mangled the link learns why nothing happened: a 400 that
    says the link is not valid, for an altered character and for a cut-off link."""
    genuine = make_token(sqlite_settings, Purpose.UNSUBSCRIBE, 1, issued_at=1700000016)
    with TestClient(create_app(sqlite_settings), base_url="https://testserver") as client:
        for token in (flipped(genuine, 3), genuine[:-1] + "B"):
            page = client.get(f"/unsubscribe/{token}")
            assert page.status_code == 400
            assert NOT_VALID in page.text
