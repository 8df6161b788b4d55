"""DISTRIBUTOR_SITE_URL starts every link of every email, page and feed: one that names no
host, carries a user, a query or a fragment is refused at start-up, saying why, before
anything is sent with it."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from distributor.core.config import load_settings
from tests.processes import invoke_main


@pytest.mark.parametrize(
    "url",
    ["http://:8000", "http://@", "https://user:pass@news.example.org", "https://news.example.org/?a=b",
     "https://news.example.org/#top", "ftp://news.example.org", "news.example.org"],
)  # fmt: skip
def test_a_site_url_no_reader_could_follow_is_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DISTRIBUTOR_SITE_URL must"):
        load_settings(site_url=url, data_dir=tmp_path)


@pytest.mark.parametrize(
    ("url", "kept"),
    [("https://news.example.org/", "https://news.example.org"),
     ("http://localhost:8000", "http://localhost:8000"),
     ("https://example.org/press/", "https://example.org/press")],
)  # fmt: skip
def test_a_site_url_with_a_host_is_kept_without_its_last_slash(
    url: str, kept: str, tmp_path: Path
) -> None:
    assert load_settings(site_url=url, data_dir=tmp_path).site_url == kept


def test_the_command_says_which_setting_and_stops(tmp_path: Path) -> None:
    env = {"DISTRIBUTOR_SITE_URL": "http://:8000", "DISTRIBUTOR_DATA_DIR": str(tmp_path)}
    result = invoke_main(env, "topics", "list")
    assert result.returncode == 78
    assert "DISTRIBUTOR_SITE_URL must name a host" in result.stderr
