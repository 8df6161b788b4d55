"""The actions: the one place where what the press office does and its audit record are
put together. Each action opens its transaction, does the work through the domain
packages, records who did it (``by``) in the same transaction, commits, and only then
wakes the workers. The faces (``cli``, ``web``) call these; they never write the audit
trail themselves (tests/test_audit_faces.py).

- releases: create, update a draft, send a test, publish or schedule, unschedule,
  correct, withdraw;
- audience: import subscribers, erase a person;
- topics: add, rename, delete;
- media: upload an image.
"""

from distributor.actions.audience import erase, erase_subscriber, import_subscribers
from distributor.actions.media import upload_image
from distributor.actions.releases import (
    KeyClaim,
    Withdrawal,
    correct,
    create_release,
    publish,
    send_test,
    unschedule,
    update_draft,
    withdraw,
)
from distributor.actions.topics import add_topic, delete_topic, rename_topic

__all__ = [
    "KeyClaim",
    "Withdrawal",
    "add_topic",
    "correct",
    "create_release",
    "delete_topic",
    "erase",
    "erase_subscriber",
    "import_subscribers",
    "publish",
    "rename_topic",
    "send_test",
    "unschedule",
    "update_draft",
    "upload_image",
    "withdraw",
]
