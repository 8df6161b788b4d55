"""The actions: the one place where what the press office does and its audit record are
put together. Each action opens its transaction, does the work through the domain
packages, records who did it (``by``) in the same transaction, commits, and only then
wakes the workers. The faces (``cli``, ``web``) call these; they never write the audit
trail themselves (tests/test_audit_faces.py).

- releases: create, update or delete a draft, send a test, publish or schedule, unschedule,
  correct, withdraw;
- audience: import subscribers, erase a person, decide a journalist's embargo access;
- topics: add, rename, delete;
- contacts: add, change or delete an entry of the address book of press contacts;
- identity: change the office's identity (name, logo, colour, address, sender…);
- media: upload an image or a document (or a file of either kind);
- accounts: invite, create, change a role or a password, disable, enable; log in.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from distributor.actions.accounts import (
        Login,
        accept_invitation,
        cancel_invitation,
        confirm_totp,
        create_user,
        create_user_once,
        disable_user,
        enable_user,
        invite,
        invite_once,
        log_in,
        log_in_with_code,
        reset_totp,
        set_user_password,
        set_user_role,
        start_totp,
    )
    from distributor.actions.audience import (
        decide_accreditation,
        erase,
        erase_subscriber,
        import_subscribers,
    )
    from distributor.actions.contacts import add_contact, delete_contact, update_contact
    from distributor.actions.identity import update_identity
    from distributor.actions.media import upload_document, upload_file, upload_image
    from distributor.actions.releases import (
        Deletion,
        KeyClaim,
        Withdrawal,
        approve,
        correct,
        create_release,
        delete_draft,
        duplicate,
        publish,
        request_approval,
        send_test,
        unschedule,
        update_draft,
        withdraw,
    )
    from distributor.actions.topics import add_topic, delete_topic, rename_topic

#: Where each action lives. Each module is imported when one of its names is first used
#: (PEP 562): a command that only erases someone does not load the release machinery, and
#: every command starts sooner.
_HOME = {
    "request_approval": "releases",
    "approve": "releases",
    "Login": "accounts",
    "reset_totp": "accounts",
    "confirm_totp": "accounts",
    "start_totp": "accounts",
    "log_in_with_code": "accounts",
    "accept_invitation": "accounts",
    "cancel_invitation": "accounts",
    "invite": "accounts",
    "invite_once": "accounts",
    "create_user_once": "accounts",
    "create_user": "accounts",
    "disable_user": "accounts",
    "enable_user": "accounts",
    "log_in": "accounts",
    "set_user_password": "accounts",
    "set_user_role": "accounts",
    "decide_accreditation": "audience",
    "erase": "audience",
    "erase_subscriber": "audience",
    "import_subscribers": "audience",
    "upload_document": "media",
    "upload_file": "media",
    "upload_image": "media",
    "Deletion": "releases",
    "KeyClaim": "releases",
    "Withdrawal": "releases",
    "correct": "releases",
    "create_release": "releases",
    "delete_draft": "releases",
    "duplicate": "releases",
    "publish": "releases",
    "send_test": "releases",
    "unschedule": "releases",
    "update_draft": "releases",
    "withdraw": "releases",
    "add_contact": "contacts",
    "delete_contact": "contacts",
    "update_contact": "contacts",
    "update_identity": "identity",
    "add_topic": "topics",
    "delete_topic": "topics",
    "rename_topic": "topics",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value  # found directly from now on
    return value


__all__ = [
    "Deletion",
    "KeyClaim",
    "Login",
    "Withdrawal",
    "accept_invitation",
    "add_contact",
    "add_topic",
    "approve",
    "cancel_invitation",
    "confirm_totp",
    "correct",
    "create_release",
    "create_user",
    "create_user_once",
    "decide_accreditation",
    "delete_contact",
    "delete_draft",
    "delete_topic",
    "disable_user",
    "duplicate",
    "enable_user",
    "erase",
    "erase_subscriber",
    "import_subscribers",
    "invite",
    "invite_once",
    "log_in",
    "log_in_with_code",
    "publish",
    "rename_topic",
    "request_approval",
    "reset_totp",
    "send_test",
    "set_user_password",
    "set_user_role",
    "start_totp",
    "unschedule",
    "update_contact",
    "update_draft",
    "update_identity",
    "upload_document",
    "upload_file",
    "upload_image",
    "withdraw",
]
