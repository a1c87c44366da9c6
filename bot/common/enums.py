"""`StrEnum`: enum members that are their string values (stored and compared as plain strings).

`enum.StrEnum` where Python has it (3.11+), else the same behaviour for 3.10.
"""

from __future__ import annotations

import enum

__all__ = ["StrEnum"]

if hasattr(enum, "StrEnum"):
    StrEnum = enum.StrEnum
else:  # Python 3.10

    class StrEnum(str, enum.Enum):  # type: ignore[no-redef]
        def __str__(self) -> str:
            return str.__str__(self)

        def __format__(self, spec: str) -> str:
            return str.__format__(str.__str__(self), spec)
