"""Fast access to an enum's members for the core's hot paths.

CPython 3.11 looks up an Enum class's attributes through `EnumType.__getattr__`'s slow
hook: `MessageType.MsgApp` costs ~90 ns where a plain class attribute costs ~30. A put
passes a few dozen such comparisons through each member's core, so the step and Ready
paths use `members(MessageType)` instead: the same member objects, looked up cheaply.
"""

from __future__ import annotations

import enum
from typing import TypeVar, cast

E = TypeVar("E", bound=enum.Enum)


def members(cls: type[E]) -> type[E]:
    """A plain class holding `cls`'s members as attributes (typed as `cls` for mypy).

    Only attribute access is supported: `members(X).A is X.A`; iterate or call `X` itself.
    """
    plain = type(f"{cls.__name__}Members", (), dict(cls.__members__))
    return cast("type[E]", plain)
