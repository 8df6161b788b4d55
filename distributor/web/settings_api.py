"""The office's identity in the admin API (under ``/api``): ``GET /api/settings`` lists
each field with its value in effect and, when the environment sets it, the variable that
does; ``PUT /api/settings`` changes the fields it names (the others stay). The logo is
uploaded on the settings page or with ``distributor settings set logo FILE``; here it can
only be removed (``"logo": ""``).

A token with the ``settings`` scope, which only a person's token has, whose person is an admin
(``Can.SETTINGS``).
"""

# No ``from __future__ import annotations``: FastAPI reads the endpoints' annotations.

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, RootModel

from distributor import actions
from distributor.core.db import session_scope
from distributor.core.roles import Caller, Can
from distributor.office.identity import FieldState, describe
from distributor.web.apibase import error_responses, token_dependency
from distributor.web.deps import AppQueue, AppSettings
from distributor.web.rights import requiring

SCOPE = "settings"
Value = str | list[int]


class SettingOut(BaseModel):
    """One field of the identity: ``value`` in effect (a list of address book ids for
    ``press_contacts``, the logo's URL or "" for ``logo``); ``set_by`` names the
    ``DISTRIBUTOR_*`` variable that sets it (then it cannot be changed here), or is null."""

    key: str
    label: str
    value: Value
    set_by: str | None


class SettingsIn(RootModel[dict[str, Value]]):
    """The fields to change, by key (``GET`` lists them): text, "" to go back to the
    default; ``press_contacts`` a list of address book ids."""

    model_config = ConfigDict(json_schema_extra={"maxProperties": 20})
    root: dict[
        Annotated[str, Field(max_length=64)],
        str | Annotated[list[Annotated[int, Field(ge=1)]], Field(max_length=50)],
    ]


def _out(states: list[FieldState]) -> list[SettingOut]:
    return [SettingOut(key=s.key, label=s.label, value=s.value, set_by=s.set_by) for s in states]


token_caller = token_dependency(SCOPE)
Administrator = Annotated[Caller, Depends(requiring(token_caller, Can.SETTINGS))]
router = APIRouter(
    tags=["settings"], responses=error_responses(SCOPE), dependencies=[Depends(token_caller)]
)


@router.get("/settings", summary="The office's identity")
def read_settings(who: Administrator, settings: AppSettings) -> list[SettingOut]:
    """Every field, its value in effect and what sets it."""
    with session_scope(settings) as session:
        return _out(describe(session, settings))


@router.put("/settings", summary="Change the office's identity")
def change_settings(
    body: SettingsIn, who: Administrator, settings: AppSettings, queue: AppQueue
) -> list[SettingOut]:
    """Change the fields named (each checked; nothing is stored unless all pass; a field
    set in the environment is refused), recorded in the audit trail; the site is
    regenerated. Answers every field as ``GET`` does."""
    actions.update_identity(settings, queue.get(), body.root, who.actor)
    with session_scope(settings) as session:
        return _out(describe(session, settings))
