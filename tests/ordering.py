"""The order the test files are handed to pytest-xdist's workers: the longest first.

``make test`` runs two workers with ``--dist loadfile --no-loadscope-reorder``: each file runs
whole on one worker, in the order collected. A long file handed out last leaves the other
worker idle while it runs (the README's shell examples take two to three minutes alone), so
the files below go first, longest first, by the sum of their tests' times in ``make test
--durations=0`` on 2026-12-06; the rest keep pytest's order. A file missing here only costs
time, never a result."""

from __future__ import annotations

import pytest

LONGEST_FIRST = (
    "test_readme.py",
    "test_api_schema.py",
    "test_end_to_end.py",
    "test_workspace_pages_browser.py",
    "test_admin_browser.py",
    "test_editor_live_browser.py",
    "test_postfix.py",
    "test_deployment.py",
    "test_workspace_journey_browser.py",
    "test_fuzz_releases.py",
    "test_heartbeat.py",
    "test_cli.py",
    "test_advance_copies.py",  # ~50 s alone (2026-12-07)
    "test_confirmation_outbox.py",
    "test_self_service_journey_browser.py",  # ~35 s alone (2026-12-07): before the 14 s below
    "test_journey_browser.py",
    "test_self_service_browser.py",  # ~31 s alone (2026-12-07)
    "test_statistics.py",  # ~22 s
    "test_digests.py",  # ~20 s
    "test_editor_media_browser.py",
    "test_fuzz_feeds.py",
    "test_worker_retries.py",
    "test_send_faults.py",
)
_RANK = {name: rank for rank, name in enumerate(LONGEST_FIRST)}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Move the files of ``LONGEST_FIRST`` to the front, in its order (a stable sort: the
    tests of a file keep theirs)."""
    items.sort(key=lambda item: _RANK.get(item.path.name, len(_RANK)))
