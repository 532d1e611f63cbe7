"""OBIS value object: parsing of every IEC 62056-21 form, canonical round trip, catalogue."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.errors import RemoteProtocolError
from gateway.obis import CATALOGUE, Kind, Obis, Refresh, lookup

groups = st.integers(min_value=0, max_value=255)


@given(groups, groups, groups, groups, groups, groups)
def test_canonical_text_round_trips(a: int, b: int, c: int, d: int, e: int, f: int) -> None:
    obis = Obis(a, b, c, d, e, f)
    assert Obis.parse(str(obis)) == obis
    assert hash(Obis.parse(str(obis))) == hash(obis)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-0:32.7.0", Obis(1, 0, 32, 7, 0)),
        ("1-1:1.8.0", Obis(1, 1, 1, 8, 0)),
        ("1.8.0", Obis(1, 0, 1, 8, 0)),
        ("32.7", Obis(1, 0, 32, 7, 0)),  # E350 short form
        ("1.8.0*14", Obis(1, 0, 1, 8, 0, 14)),  # billing period
        ("0.1.0&12", Obis(0, 0, 0, 1, 0, 12)),  # ZMD405 reset-count suffix; C = 0 is abstract
        ("0.9.1", Obis(0, 0, 0, 9, 1)),
        ("C.1.0", Obis(0, 0, 96, 1, 0)),
        ("0-0:C.1.0", Obis(0, 0, 96, 1, 0)),
        ("F.F", Obis(0, 0, 97, 97, 0)),
        ("P.01", Obis(1, 0, 99, 1, 0)),
        ("1-0:1.29.0", Obis(1, 0, 1, 29, 0)),
    ],
)
def test_parses_iec_forms(text: str, expected: Obis) -> None:
    assert Obis.parse(text) == expected


@pytest.mark.parametrize("text", ["", "1.8", "x.8.0", "1-0:1.8.0.1.2", "1-0:256.7.0", "P.01(", "1.8.0*"])
def test_rejects_garbage_with_remote_protocol_error(text: str) -> None:
    if text == "1.8":  # two groups are a valid short form (C.D)
        assert Obis.parse(text) == Obis(1, 0, 1, 8, 0)
        return
    with pytest.raises(RemoteProtocolError):
        Obis.parse(text)


def test_short_form_uses_letters_for_reserved_groups() -> None:
    assert Obis(0, 0, 96, 1, 0).short == "C.1.0"
    assert Obis(0, 0, 97, 97, 0).short == "F.F.0"
    assert Obis(1, 0, 32, 7, 0).short == "32.7.0"
    assert Obis(1, 0, 1, 8, 0, 14).short == "1.8.0*14"


def test_value_group_range_is_checked() -> None:
    with pytest.raises(ValueError, match="value group C"):
        Obis(1, 0, 300, 7, 0)


def test_lookup_ignores_channel_b_as_landis_gyr_uses_b_1() -> None:
    info = lookup(Obis.parse("1-1:1.8.0"))
    assert info is not None
    assert info.name == "Active energy import"
    assert lookup(Obis.parse("1-0:99.99.0")) is None


def test_catalogue_has_the_one_second_set_and_energy_registers() -> None:
    fast = {i.obis.short for i in CATALOGUE if i.refresh is Refresh.SECOND}
    assert {"32.7.0", "52.7.0", "72.7.0", "31.7.0", "51.7.0", "71.7.0"} <= fast
    assert {"1.7.0", "3.7.0", "13.7.0", "14.7.0"} <= fast
    energy = {i.obis.short for i in CATALOGUE if i.kind is Kind.ENERGY}
    assert energy == {"1.8.0", "2.8.0", "3.8.0", "4.8.0"}
    assert len({i.obis for i in CATALOGUE}) == len(CATALOGUE), "duplicate OBIS codes"
    assert len({i.name for i in CATALOGUE}) == len(CATALOGUE), "duplicate display names"
    priorities = [i.priority for i in CATALOGUE if i.refresh is Refresh.SECOND]
    assert len(set(priorities)) == len(priorities), "priorities must order the cycle unambiguously"
