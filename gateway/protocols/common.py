"""What every sans-I/O core shares: the NEED_DATA sentinel of ``next_event()``.

One sentinel for all cores, so that a caller driving two of them in turn (IEC 62056-21
sign-on, then HDLC in mode E) tests one value.
"""

from __future__ import annotations

import enum
from typing import Final


class NeedData(enum.Enum):
    """Type of the :data:`NEED_DATA` sentinel: no complete message is buffered yet."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"

    __str__ = __repr__


#: Returned by ``next_event()`` / ``next_frame()`` when more bytes are needed.
NEED_DATA: Final = NeedData.NEED_DATA
