"""Units: meter unit texts and DLMS unit codes <-> UNECE codes for OPC UA.

OPC UA ``EUInformation`` (OPC 10000-8 §5.6.3) names a unit by its UN/CEFACT
Recommendation 20 common code; ``UnitId`` is that code's ASCII bytes read as a
big-endian integer (``"WTT"`` -> 0x575454 = 5723220). Every row here is checked
against the OPC Foundation's UNECE_to_OPCUA.csv by ``tests/unit/test_units.py``.

DLMS unit codes are the ``unit`` enumeration of the COSEM scaler_unit attribute
(IEC 62056-6-2, class Register, attribute 3).
"""

from __future__ import annotations

from dataclasses import dataclass

UNECE_NAMESPACE = "http://www.opcfoundation.org/UA/units/un/cefact"


@dataclass(frozen=True, slots=True)
class Unit:
    """One unit as the gateway publishes it."""

    text: str  # as a meter writes it in an IEC 62056-21 data set ("kWh")
    unece: str  # UN/CEFACT Rec 20 common code ("KWH")
    display: str  # EUInformation.DisplayName ("kW·h")
    description: str  # EUInformation.Description ("kilowatt hour")
    dlms_code: int | None = None  # COSEM unit enumeration where one exists

    @property
    def unit_id(self) -> int:
        """EUInformation.UnitId: the common code's ASCII bytes as a big-endian integer."""
        return int.from_bytes(self.unece.encode("ascii"), "big")


_UNITS = (
    Unit("W", "WTT", "W", "watt", 27),
    Unit("kW", "KWT", "kW", "kilowatt"),
    Unit("MW", "MAW", "MW", "megawatt"),
    Unit("var", "D44", "var", "var", 29),
    Unit("kvar", "KVR", "kvar", "kilovar"),
    Unit("VA", "D46", "V·A", "volt - ampere", 28),
    Unit("kVA", "KVA", "kV·A", "kilovolt - ampere"),
    Unit("Wh", "WHR", "W·h", "watt hour", 30),
    Unit("kWh", "KWH", "kW·h", "kilowatt hour"),
    Unit("MWh", "MWH", "MW·h", "megawatt hour (1000\u00a0kW.h)"),
    # Rec 20 has no code for var·h: reactive energy is published in kvar·h.
    Unit("kvarh", "K3", "kvar·h", "kilovolt ampere reactive hour"),
    Unit("kVAh", "C79", "kVAh", "kilovolt ampere hour"),
    Unit("V", "VLT", "V", "volt", 35),
    Unit("A", "AMP", "A", "ampere", 33),
    Unit("Hz", "HTZ", "Hz", "hertz", 44),
    Unit("", "C62", "1", "one", 255),
    Unit("%", "P1", "% or pct", "percent", 56),
    Unit("°", "DD", "°", "degree [unit of angle]", 8),
    Unit("s", "SEC", "s", "second [unit of time]", 7),
)

UNITS: dict[str, Unit] = {u.text: u for u in _UNITS}
BY_DLMS_CODE: dict[int, Unit] = {u.dlms_code: u for u in _UNITS if u.dlms_code is not None}
#: Unit text of every COSEM unit code (IEC 62056-6-2 unit enumeration) the gateway can
#: convert, including those it only publishes with a prefix (var·h and VA·h have no
#: UNECE code: a meter's varh register is published in kvarh).
DLMS_UNIT_TEXT: dict[int, str] = {**{code: u.text for code, u in BY_DLMS_CODE.items()}, 31: "VAh", 32: "varh"}


def unit_for(text: str) -> Unit:
    """The unit for a meter's unit text; unknown texts raise ``KeyError`` naming the text."""
    try:
        return UNITS[text]
    except KeyError:
        raise KeyError(f"unit {text!r} has no UNECE mapping") from None


#: Decimal prefixes the meters use in unit texts ("kWh", "kvar", "MW"), and the base units.
_PREFIX = {"": 1.0, "k": 1e3, "M": 1e6}
_BASES = frozenset({"W", "var", "VA", "Wh", "varh", "VAh", "V", "A", "Hz"})


def _split(unit: str) -> tuple[str, str] | None:
    if unit in _BASES:
        return "", unit
    if unit[:1] in ("k", "M") and unit[1:] in _BASES:
        return unit[:1], unit[1:]
    return None


def conversion_factor(source: str, target: str) -> float | None:
    """Factor that turns a value in unit ``source`` into unit ``target`` (``"W"`` -> ``"kW"``: 0.001).

    Only decimal prefixes of the same base unit convert; anything else is None, so that a
    meter configured to publish another quantity is caught instead of scaled wrongly.
    """
    if source == target:
        return 1.0
    s, t = _split(source), _split(target)
    if s is None or t is None or s[1] != t[1]:
        return None
    return _PREFIX[s[0]] / _PREFIX[t[0]]
