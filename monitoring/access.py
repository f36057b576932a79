"""Who may do what at the risk desk: bearer tokens with roles, configured by the operator
(``SALESGUARD_DESK_TOKENS``), never logged or echoed.

Roles are ordered: a ``viewer`` reads; an ``analyst`` also releases and rejects holds; an
``admin`` also sets credit limits, the on-stop flag and emergency mode.

>>> users = [DeskUser(user="ana", role="analyst", token="a" * 24)]
>>> who("a" * 24, users).user, who("b" * 24, users)
('ana', None)
>>> allows("analyst", "viewer"), allows("analyst", "admin")
(True, False)
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, SecretStr, StringConstraints

Role = Literal["viewer", "analyst", "admin"]
_RANK: dict[str, int] = {"viewer": 0, "analyst": 1, "admin": 2}


class DeskUser(BaseModel):
    """One desk user: a name (recorded in the audit trail), a role and a secret token."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    user: Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._:\-]+$")]
    role: Role
    token: Annotated[SecretStr, StringConstraints(min_length=16, max_length=256)]


def who(token: str, users: Sequence[DeskUser]) -> DeskUser | None:
    """The user a token belongs to (compared in constant time), or None."""
    found = None
    for user in users:
        if hmac.compare_digest(token.encode(), user.token.get_secret_value().encode()):
            found = user
    return found


def allows(role: Role, needed: Role) -> bool:
    """Whether ``role`` may do what needs ``needed``."""
    return _RANK[role] >= _RANK[needed]
