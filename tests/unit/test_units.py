"""Every unit the gateway publishes is checked against the OPC Foundation's UNECE table."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from gateway.obis import CATALOGUE, LOAD_PROFILE_1, LOAD_PROFILE_2
from gateway.units import UNITS, conversion_factor, unit_for

TABLE = Path(__file__).parent.parent / "fixtures" / "units" / "UNECE_to_OPCUA.csv"


def _table() -> dict[str, tuple[int, str, str]]:
    with TABLE.open(encoding="utf-8-sig") as fh:
        return {
            row["UNECECode"]: (int(row["UnitId"]), row["DisplayName"], row["Description"])
            for row in csv.DictReader(fh)
        }


@pytest.mark.parametrize("unit", list(UNITS.values()), ids=lambda u: u.text or "one")
def test_unit_matches_unece_table(unit) -> None:  # type: ignore[no-untyped-def]
    table = _table()
    assert unit.unece in table, f"{unit.unece} is not a UNECE Rec 20 code"
    unit_id, display, description = table[unit.unece]
    assert unit.unit_id == unit_id
    assert unit.display == display
    assert unit.description == description


def test_unit_id_is_the_code_as_big_endian_ascii() -> None:
    assert unit_for("W").unit_id == 5723220  # "WTT"
    assert unit_for("kWh").unit_id == 4937544  # "KWH"


def test_every_catalogue_unit_has_a_mapping() -> None:
    for info in (*CATALOGUE, *LOAD_PROFILE_1, *LOAD_PROFILE_2):
        unit_for(info.unit)


def test_unknown_unit_names_itself() -> None:
    with pytest.raises(KeyError, match="furlong"):
        unit_for("furlong")


@pytest.mark.parametrize(
    ("source", "target", "factor"),
    [
        ("W", "kW", 0.001), ("kW", "W", 1000.0), ("Wh", "kWh", 0.001), ("varh", "kvarh", 0.001),
        ("MW", "kW", 1000.0), ("kWh", "kWh", 1.0), ("", "", 1.0),
        ("V", "A", None), ("kW", "kWh", None), ("kvar", "kW", None), ("x", "kW", None),
    ],
)  # fmt: skip
def test_conversion_factor_only_between_prefixes_of_one_unit(
    source: str, target: str, factor: float | None
) -> None:
    result = conversion_factor(source, target)
    assert result == (pytest.approx(factor) if factor is not None else None)
