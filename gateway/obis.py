"""OBIS identifiers and the catalogue of objects the gateway knows.

An OBIS code (IEC 62056-61, "Object identification system") names a value in a
meter with six value groups ``A-B:C.D.E*F``:

* A medium (1 = electricity, 0 = abstract), B channel, C quantity, D processing
  (7 = instantaneous, 8 = time integral since reset, 29 = energy per capture period),
  E tariff or further classification, F historical value (billing period).

IEC 62056-21 data sets often omit A-B and F (``1.8.0``), shorten E (``32.7``), or use
the letters C, F, L, P for the reserved values 96, 97, 98, 99 in group C or D
(``C.1.0`` serial number, ``F.F`` error register, ``P.01`` load profile).

The catalogue is declarative: one row per object, with a human name, the quantity's
DLMS unit, the unit the meter publishes it in, and how often the poller reads it.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from gateway.errors import RemoteProtocolError

#: IEC 62056-61 letter codes for the reserved values of groups C and D.
_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}
_LETTER_OF = {v: k for k, v in _LETTERS.items()}
#: Value group C of abstract objects (IEC 62056-61): general purpose (0), service entries
#: (C, 96) and error registers (F, 97) - their short IEC 62056-21 forms mean A = 0.
_ABSTRACT_C = frozenset({0, 96, 97})

_OBIS_RE = re.compile(
    r"""^\s*
    (?:(?P<a>\d{1,3})-(?P<b>\d{1,3}):)?          # optional A-B:
    (?P<c>\d{1,3}|[CFLP])\.(?P<d>\d{1,3}|[CFLP]) # C.D (mandatory)
    (?:\.(?P<e>\d{1,3}))?                        # .E
    (?:[*&.](?P<f>\d{1,3}))?                     # *F, &F or .F
    \s*$""",
    re.VERBOSE,
)


#: An OBIS code without value group B (:attr:`Obis.key`).
ObisKey = tuple[int, int, int, int, int]


def _group(text: str) -> int:
    return _LETTERS[text] if text in _LETTERS else int(text)


@dataclass(frozen=True, slots=True, order=True)
class Obis:
    """An OBIS code with all six value groups (IEC 62056-61 §4).

    ``str()`` gives the canonical ``A-B:C.D.E*F`` form and :meth:`parse` reads it back,
    so ``Obis.parse(str(o)) == o`` for every code.
    """

    a: int
    b: int
    c: int
    d: int
    e: int = 0
    f: int = 255

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d", "e", "f"):
            value = getattr(self, name)
            if not 0 <= value <= 255:
                raise ValueError(f"OBIS value group {name.upper()} must be 0..255, got {value}")

    @classmethod
    def parse(cls, text: str, *, default_a: int = 1, default_b: int = 0) -> Obis:
        """Parse ``A-B:C.D.E*F`` and the short forms of IEC 62056-21 data sets.

        Missing A-B take the defaults (electricity, channel 0), except for the abstract
        objects of group C 0, 96 (C) and 97 (F), whose A is 0; a missing E is 0 and a
        missing F is 255 ("not used"). Raises :class:`RemoteProtocolError` for anything
        that is not an OBIS code, since such text comes from a meter.
        """
        match = _OBIS_RE.match(text)
        if match is None:
            raise RemoteProtocolError(f"not an OBIS code: {text!r}")
        a = match["a"]
        c = _group(match["c"])
        if a is None and c in _ABSTRACT_C:
            default_a = 0  # clock, serial number, error register: abstract objects (A = 0)
        try:
            return cls(
                int(a) if a is not None else default_a,
                int(match["b"]) if a is not None else default_b,
                _group(match["c"]),
                _group(match["d"]),
                int(match["e"]) if match["e"] is not None else 0,
                int(match["f"]) if match["f"] is not None else 255,
            )
        except ValueError as err:
            raise RemoteProtocolError(f"OBIS value group out of range in {text!r}") from err

    def __str__(self) -> str:
        text = f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}"
        return text if self.f == 255 else f"{text}*{self.f}"

    @property
    def short(self) -> str:
        """The IEC 62056-21 short form ``C.D.E`` with letter codes (``C.1.0``, ``1.8.0``)."""
        c = _LETTER_OF.get(self.c, str(self.c))
        d = _LETTER_OF.get(self.d, str(self.d)) if self.c in _LETTER_OF else str(self.d)
        text = f"{c}.{d}.{self.e}"
        return text if self.f == 255 else f"{text}*{self.f}"

    @property
    def node_key(self) -> str:
        """A stable, URL- and NodeId-safe key: ``1-0_32.7.0_255``."""
        return f"{self.a}-{self.b}_{self.c}.{self.d}.{self.e}_{self.f}"

    @property
    def key(self) -> ObisKey:
        """The code without value group B, which Landis+Gyr meters set to 1 for energy
        (DESIGN §3): the one place where the gateway decides that B does not matter."""
        return (self.a, self.c, self.d, self.e, self.f)

    def matches(self, other: Obis) -> bool:
        """Equal except for group B (see :attr:`key`)."""
        return self.key == other.key


class Refresh(enum.Enum):
    """How often the poller reads an object."""

    #: The 1-second instrumentation set (u, i, p, q, pf, f).
    SECOND = "second"
    #: Energy registers and the clock, read every few seconds.
    REGISTER = "register"
    #: Identity and other values read once per session.
    STATIC = "static"


class Kind(enum.Enum):
    """What an object is, which decides its OPC UA shape and whether it may go down."""

    INSTANTANEOUS = "instantaneous"
    ENERGY = "energy"  # a monotonically non-decreasing register
    IDENTITY = "identity"


@dataclass(frozen=True, slots=True)
class ObisInfo:
    """One row of the catalogue: what the gateway knows about an OBIS object."""

    obis: Obis
    name: str  # human DisplayName, e.g. "Voltage L1"
    description: str
    unit: str  # unit text as published (IEC 62056-21 readout style): "V", "kWh"
    kind: Kind
    refresh: Refresh
    #: Reading order inside the 1-second cycle; lower is read first and never rotated out.
    priority: int = 100
    eu_low: float = 0.0
    eu_high: float = 0.0

    @property
    def browse_name(self) -> str:
        """CamelCase of the name: "Active energy import" -> "ActiveEnergyImport"."""
        words = self.name.replace("+", " Plus ").replace("-", " Minus ").split()
        return "".join(w[:1].upper() + w[1:] for w in words)


def _o(text: str) -> Obis:
    return Obis.parse(text)


def _inst(code: str, name: str, desc: str, unit: str, prio: int, lo: float, hi: float) -> ObisInfo:
    return ObisInfo(_o(code), name, desc, unit, Kind.INSTANTANEOUS, Refresh.SECOND, prio, lo, hi)


def _energy(code: str, name: str, desc: str, unit: str) -> ObisInfo:
    return ObisInfo(_o(code), name, desc, unit, Kind.ENERGY, Refresh.REGISTER, 0, 0.0, 1e9)


#: Objects of a three-phase meter. Priorities follow what a SCADA operator needs first:
#: total powers, voltages and currents every second; per-phase powers rotate if the
#: line is too slow to read everything each second.
CATALOGUE: tuple[ObisInfo, ...] = (
    _inst("1-0:1.7.0", "Active power import", "Total active power, import (+P)", "kW", 1, 0, 60),
    _inst("1-0:2.7.0", "Active power export", "Total active power, export (-P)", "kW", 2, 0, 60),
    _inst("1-0:3.7.0", "Reactive power import", "Total reactive power, import (+Q)", "kvar", 3, 0, 60),
    _inst("1-0:4.7.0", "Reactive power export", "Total reactive power, export (-Q)", "kvar", 4, 0, 60),
    _inst("1-0:32.7.0", "Voltage L1", "Phase voltage L1 to neutral, RMS", "V", 5, 0, 300),
    _inst("1-0:52.7.0", "Voltage L2", "Phase voltage L2 to neutral, RMS", "V", 6, 0, 300),
    _inst("1-0:72.7.0", "Voltage L3", "Phase voltage L3 to neutral, RMS", "V", 7, 0, 300),
    _inst("1-0:31.7.0", "Current L1", "Phase current L1, RMS", "A", 8, 0, 100),
    _inst("1-0:51.7.0", "Current L2", "Phase current L2, RMS", "A", 9, 0, 100),
    _inst("1-0:71.7.0", "Current L3", "Phase current L3, RMS", "A", 10, 0, 100),
    _inst("1-0:13.7.0", "Power factor", "Total power factor |P|/S", "", 11, 0, 1),
    _inst("1-0:14.7.0", "Frequency", "Supply frequency", "Hz", 12, 45, 55),
    _inst("1-0:21.7.0", "Active power import L1", "Active power L1, import (+P)", "kW", 20, 0, 20),
    _inst("1-0:41.7.0", "Active power import L2", "Active power L2, import (+P)", "kW", 21, 0, 20),
    _inst("1-0:61.7.0", "Active power import L3", "Active power L3, import (+P)", "kW", 22, 0, 20),
    _inst("1-0:22.7.0", "Active power export L1", "Active power L1, export (-P)", "kW", 23, 0, 20),
    _inst("1-0:42.7.0", "Active power export L2", "Active power L2, export (-P)", "kW", 24, 0, 20),
    _inst("1-0:62.7.0", "Active power export L3", "Active power L3, export (-P)", "kW", 25, 0, 20),
    _inst("1-0:23.7.0", "Reactive power import L1", "Reactive power L1, import (+Q)", "kvar", 26, 0, 20),
    _inst("1-0:43.7.0", "Reactive power import L2", "Reactive power L2, import (+Q)", "kvar", 27, 0, 20),
    _inst("1-0:63.7.0", "Reactive power import L3", "Reactive power L3, import (+Q)", "kvar", 28, 0, 20),
    _inst("1-0:24.7.0", "Reactive power export L1", "Reactive power L1, export (-Q)", "kvar", 29, 0, 20),
    _inst("1-0:44.7.0", "Reactive power export L2", "Reactive power L2, export (-Q)", "kvar", 30, 0, 20),
    _inst("1-0:64.7.0", "Reactive power export L3", "Reactive power L3, export (-Q)", "kvar", 31, 0, 20),
    _inst("1-0:33.7.0", "Power factor L1", "Power factor L1", "", 32, 0, 1),
    _inst("1-0:53.7.0", "Power factor L2", "Power factor L2", "", 33, 0, 1),
    _inst("1-0:73.7.0", "Power factor L3", "Power factor L3", "", 34, 0, 1),
    _energy("1-0:1.8.0", "Active energy import", "Active energy import A+, total", "kWh"),
    _energy("1-0:2.8.0", "Active energy export", "Active energy export A-, total", "kWh"),
    _energy("1-0:3.8.0", "Reactive energy import", "Reactive energy import R+, total", "kvarh"),
    _energy("1-0:4.8.0", "Reactive energy export", "Reactive energy export R-, total", "kvarh"),
)

#: Priorities up to this are the 1-second set (3 x U, 3 x I, P+/-, Q+/-, PF, f): the poller
#: keeps them in every cycle when the line allows, before anything else.
ONE_SECOND_SET_PRIORITY = 12

#: Load profile 1 channels: energy per 15-minute capture period (D = 29).
#: The supply's phase voltages L1..L3 and its frequency (EN 50160's quantities, the alarms' inputs).
PHASE_VOLTAGES = (Obis(1, 0, 32, 7, 0), Obis(1, 0, 52, 7, 0), Obis(1, 0, 72, 7, 0))
FREQUENCY = Obis(1, 0, 14, 7, 0)

LOAD_PROFILE_1 = (
    ObisInfo(
        _o("1-0:1.29.0"),
        "A+ per period",
        "Active energy import in the period",
        "kWh",
        Kind.ENERGY,
        Refresh.STATIC,
    ),
    ObisInfo(
        _o("1-0:2.29.0"),
        "A- per period",
        "Active energy export in the period",
        "kWh",
        Kind.ENERGY,
        Refresh.STATIC,
    ),
    ObisInfo(
        _o("1-0:3.29.0"),
        "R+ per period",
        "Reactive energy import in the period",
        "kvarh",
        Kind.ENERGY,
        Refresh.STATIC,
    ),
    ObisInfo(
        _o("1-0:4.29.0"),
        "R- per period",
        "Reactive energy export in the period",
        "kvarh",
        Kind.ENERGY,
        Refresh.STATIC,
    ),
)

#: Load profile 2 channels: means over the 15-minute period (D = 5, "last average").
LOAD_PROFILE_2 = tuple(
    ObisInfo(_o(code), name, desc, unit, Kind.INSTANTANEOUS, Refresh.STATIC)
    for code, name, desc, unit in (
        ("1-0:32.5.0", "Voltage L1 mean", "Mean voltage L1 over the period", "V"),
        ("1-0:52.5.0", "Voltage L2 mean", "Mean voltage L2 over the period", "V"),
        ("1-0:72.5.0", "Voltage L3 mean", "Mean voltage L3 over the period", "V"),
        ("1-0:31.5.0", "Current L1 mean", "Mean current L1 over the period", "A"),
        ("1-0:51.5.0", "Current L2 mean", "Mean current L2 over the period", "A"),
        ("1-0:71.5.0", "Current L3 mean", "Mean current L3 over the period", "A"),
    )
)

#: Identity and clock objects.
SERIAL_NUMBER = _o("0-0:96.1.0")  # C.1.0
ERROR_REGISTER = _o("0-0:97.97.0")  # F.F
TIME = _o("0-0:0.9.1")  # IEC 62056-21 time hh:mm:ss
DATE = _o("0-0:0.9.2")  # IEC 62056-21 date YY-MM-DD
FIRMWARE = _o("1-0:0.2.0")
EVENT_CODE = _o("0-0:96.11.0")  # C.11.0

_BY_KEY = {i.obis.key: i for i in CATALOGUE}


def lookup(obis: Obis) -> ObisInfo | None:
    """The catalogue row for ``obis``, ignoring group B (L+G uses B = 1)."""
    return _BY_KEY.get(obis.key)
