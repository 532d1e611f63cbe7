"""The MQTT topic tree of OPC UA PubSub (OPC 10000-14 v1.05 §7.3.4.7), and SMX's two extensions.

::

    <prefix>/json/data/<PublisherId>/<WriterGroup>/<DataSetWriter>       data (not retained)
    <prefix>/json/metadata/<PublisherId>/<WriterGroup>/<DataSetWriter>   metadata (retained)
    <prefix>/json/status/<PublisherId>                                   status (retained; the Will)
    <prefix>/json/ack/<PublisherId>                                      SMX: consumer acknowledgements
    <prefix>/json/replay/<PublisherId>                                   SMX: replay requests

A topic level must not be empty nor hold ``/``, ``+``, ``#`` or NUL (MQTT 5 §4.7), so
every name that becomes one is checked here, once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: The default prefix of the topic tree (§7.3.4.7.1).
DEFAULT_PREFIX = "opcua"
_LEVEL = re.compile(r"^[^/+#\x00]+$")


def check_level(name: str, what: str) -> str:
    """``name`` if it can be one topic level, else ValueError naming ``what``."""
    if not _LEVEL.match(name) or len(name.encode()) > 256:
        raise ValueError(f"{what} {name!r} cannot be an MQTT topic level (empty, or holds / + # or NUL)")
    return name


def check_prefix(prefix: str) -> str:
    """A prefix of one or more levels (``opcua``, ``fleet/opcua``)."""
    for level in prefix.split("/"):
        check_level(level, "topic prefix level")
    return prefix


@dataclass(frozen=True, slots=True)
class Topics:
    """The topics of one publisher."""

    prefix: str
    publisher_id: str

    def __post_init__(self) -> None:
        check_prefix(self.prefix)
        check_level(self.publisher_id, "PublisherId")

    @property
    def _base(self) -> str:
        return f"{self.prefix}/json"

    def data(self, group: str, writer: str) -> str:
        return f"{self._base}/data/{self.publisher_id}/{group}/{writer}"

    def metadata(self, group: str, writer: str) -> str:
        return f"{self._base}/metadata/{self.publisher_id}/{group}/{writer}"

    @property
    def status(self) -> str:
        return f"{self._base}/status/{self.publisher_id}"

    @property
    def ack(self) -> str:
        return f"{self._base}/ack/{self.publisher_id}"

    @property
    def replay(self) -> str:
        return f"{self._base}/replay/{self.publisher_id}"


def publisher_id_from_uri(application_uri: str) -> str:
    """A PublisherId derived from an application URI: its last ``:`` or ``/`` segment with
    anything but letters, digits, ``-``, ``_`` and ``.`` made ``-`` (``urn:smx:smx-17``
    -> ``smx-17``), at most 256 characters. Configure ``[upstream] publisher_id`` where URIs
    are not unique."""
    last = [s for s in re.split(r"[:/]", application_uri) if s]
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", last[-1] if last else "")[:256]  # ASCII: 256 bytes
    return check_level(name or "smx", "PublisherId")
