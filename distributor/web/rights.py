"""What a route of the API or the dashboard needs the caller to be allowed (``core/roles.py``),
declared on the route as a dependency, so that a test can walk every route and check it
(tests/test_role_matrix.py)."""

# No ``from __future__ import annotations``: FastAPI reads the dependency's annotations.

from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends

from distributor.core.roles import Caller, Can

_NEEDS = "__distributor_needs__"
F = TypeVar("F", bound=Callable[..., object])


def declare(check: F, need: Can) -> F:
    """Mark the dependency ``check`` as the one that checks ``need``; returns it."""
    setattr(check, _NEEDS, need)
    return check


def needs_of(dependency: object) -> Can | None:
    """The capability a dependency made by ``declare`` checks, or None for any other."""
    need = getattr(dependency, _NEEDS, None)
    return need if isinstance(need, Can) else None


def requiring(identify: Callable[..., Caller], need: Can) -> Callable[..., Caller]:
    """A FastAPI dependency answering the caller ``identify`` finds, once it is known that
    they may do ``need`` (Forbidden, saying what and why, otherwise: 403)."""

    def allowed(found: Annotated[Caller, Depends(identify)]) -> Caller:
        found.require(need)
        return found

    return declare(allowed, need)
