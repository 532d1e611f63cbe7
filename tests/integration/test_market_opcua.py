"""Market services over OPC UA, with a real asyncua client against the running gateway:
RegisterProfile / ReadProfile / ComputeAdvice, the live advice variables, and writes to
the external values. A refused call names the argument and says why, and changes nothing."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from asyncua import ua

from gateway.security.users import Role
from tests.support.harness import Running, demo, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Running]:
    import os

    here = Path.cwd()
    os.chdir(tmp_path_factory.mktemp("market"))
    keep_an_external_value(Path("var/archive"))
    try:
        async with running_gateway(demo(), login=Role.OPERATOR) as running:
            await running.gateway.pollers["meter1"].wait_snapshot()
            yield running
    finally:
        os.chdir(here)


def keep_an_external_value(archive: Path) -> None:
    """A value kept from before a restart (test_a_kept_external_value_is_shown_at_start)."""
    archive.mkdir(parents=True)
    (archive / "external.json").write_text(
        '{"renewable_share": {"value": 11.0, "time": "2026-11-26T10:00:00Z", '
        '"received": "2026-11-26T10:00:01Z", "origin": "rest"}}'
    )


def market_day(gw: Running, offset: int = 0) -> tuple[date, int]:
    desk = gw.gateway.desk
    assert desk is not None
    day = desk.calendar.day_of(gw.gateway.clock.now()) + timedelta(days=offset)
    return day, desk.calendar.periods_in(day)


async def call(gw: Running, method: str, *args: ua.Variant) -> ua.CallMethodResult:
    request = ua.CallMethodRequest(
        ObjectId=gw.node("meter1.Market").nodeid,
        MethodId=gw.node(f"meter1.Market.{method}").nodeid,
        InputArguments=list(args),
    )
    (result,) = await gw.client.uaclient.call([request])
    return result


def register_args(day: object, values: Any, unit: str = "kWh", replace: bool = False) -> list[ua.Variant]:
    day_arg = day if isinstance(day, ua.Variant) else ua.Variant(str(day), ua.VariantType.String)
    values_arg = values if isinstance(values, ua.Variant) else ua.Variant(values, ua.VariantType.Double)
    return [
        day_arg,
        values_arg,
        ua.Variant(unit, ua.VariantType.String),
        ua.Variant(replace, ua.VariantType.Boolean),
    ]


def outputs(result: ua.CallMethodResult) -> list[Any]:
    return [v.Value for v in result.OutputArguments]


def message(result: ua.CallMethodResult, index: int) -> str:
    info = result.InputArgumentDiagnosticInfos[index]
    return str(info.AdditionalInfo)


def stored(day: date) -> bytes | None:
    path = Path("var/archive/meter1/notified") / f"{day}.csv"
    return path.read_bytes() if path.exists() else None


async def test_register_read_back_and_list(gw: Running) -> None:
    day, n = market_day(gw, 1)
    values = [0.25 + 0.01 * (i % 7) for i in range(n)]
    result = await call(gw, "RegisterProfile", *register_args(day, values))
    assert result.StatusCode.is_good(), result
    periods, total = outputs(result)
    assert periods == n
    assert total == pytest.approx(sum(values))
    read = await call(gw, "ReadProfile", ua.Variant(day.isoformat(), ua.VariantType.String))
    assert read.StatusCode.is_good()
    starts, energy = outputs(read)
    assert energy == pytest.approx(values)
    assert len(starts) == n
    assert (starts[1] - starts[0]) == timedelta(minutes=15)
    days = await gw.node("meter1.Market.NotifiedDays").read_value()
    assert day.isoformat() in days
    # Average kW converts to kWh per 15-minute period, replacing on purpose.
    again = await call(gw, "RegisterProfile", *register_args(day, [2.0] * n, "kW", replace=True))
    assert again.StatusCode.is_good()
    assert outputs(again)[1] == pytest.approx(0.5 * n)


@pytest.mark.parametrize(
    ("case", "index", "status", "argument_status", "text"),
    [
        (
            "wrong length",
            1,
            "BadInvalidArgument",
            "BadInvalidArgument",
            "settlement periods of 15 min, got 3 values",
        ),
        ("nan", 1, "BadInvalidArgument", "BadInvalidArgument", "period 5: NaN is not a value"),
        ("infinite", 1, "BadOutOfRange", "BadOutOfRange", "period 5: inf is not a finite value"),
        (
            "values as strings",
            1,
            "BadInvalidArgument",
            "BadTypeMismatch",
            "expected an array of Double, got String[]",
        ),
        (
            "values scalar",
            1,
            "BadInvalidArgument",
            "BadTypeMismatch",
            "expected an array of Double, got Double",
        ),
        ("day as integer", 0, "BadInvalidArgument", "BadTypeMismatch", "Day: expected a String, got Int32"),
        ("day not a date", 0, "BadInvalidArgument", "BadInvalidArgument", "expected a date YYYY-MM-DD"),
        ("past day", 0, "BadOutOfRange", "BadOutOfRange", "2020-01-01 is over"),
        ("bad unit", 2, "BadInvalidArgument", "BadInvalidArgument", "unit must be one of kWh, kW"),
        ("no replace", 3, "BadInvalidArgument", "BadInvalidArgument", "already notified; replacing it needs"),
    ],
)
async def test_refused_registrations_say_why_and_store_nothing(
    gw: Running, case: str, index: int, status: str, argument_status: str, text: str
) -> None:
    day, n = market_day(gw, 2)
    first = await call(gw, "RegisterProfile", *register_args(day, [0.1] * n, replace=True))
    assert first.StatusCode.is_good()
    before = stored(day)
    good = [0.3] * n
    args = {
        "wrong length": register_args(day, [0.1, 0.2, 0.3]),
        "nan": register_args(day, [*good[:4], math.nan, *good[5:]]),
        "infinite": register_args(day, [*good[:4], math.inf, *good[5:]]),
        "values as strings": register_args(day, ua.Variant(["1"] * n, ua.VariantType.String)),
        "values scalar": register_args(day, ua.Variant(0.3, ua.VariantType.Double)),
        "day as integer": register_args(ua.Variant(20261127, ua.VariantType.Int32), good),
        "day not a date": register_args("2026-13-40", good),
        "past day": register_args("2020-01-01", [0.1] * 96),
        "bad unit": register_args(day, good, unit="MWh"),
        "no replace": register_args(day, good),
    }[case]
    result = await call(gw, "RegisterProfile", *args)
    assert result.StatusCode.name == status, case
    assert result.InputArgumentResults[index].name == argument_status
    assert text in message(result, index)
    assert all(r.is_good() for i, r in enumerate(result.InputArgumentResults) if i != index)
    assert stored(day) == before  # byte for byte


async def test_argument_count_is_checked(gw: Running) -> None:
    day, _n = market_day(gw, 1)
    result = await call(gw, "RegisterProfile", ua.Variant(day.isoformat(), ua.VariantType.String))
    assert result.StatusCode.name == "BadArgumentsMissing"
    result = await call(gw, "ReadProfile", ua.Variant("2099-01-01", ua.VariantType.String))
    assert result.StatusCode.name == "BadNoData"
    assert "no profile notified for 2099-01-01" in message(result, 0)


async def test_compute_advice_and_the_live_variables(gw: Running) -> None:
    day, n = market_day(gw)
    values = [0.1 * (1 + i % 4) for i in range(n)]
    result = await call(gw, "RegisterProfile", *register_args(day, values, replace=True))
    assert result.StatusCode.is_good()
    names = [a.Name for a in await gw.node("meter1.Market.ComputeAdvice.OutputArguments").read_value()]
    # DateTime.MinValue (OPC UA "no time") asks for the advice now.
    advice = await call(
        gw, "ComputeAdvice", ua.Variant(datetime(1601, 1, 1, tzinfo=UTC), ua.VariantType.DateTime)
    )
    assert advice.StatusCode.is_good()
    out = dict(zip(names, outputs(advice), strict=True))
    # Started mid-period: the energy at the period start is unknown, so nothing is advised yet.
    assert out["State"] in ("no-measurement", "advised")
    desk = gw.gateway.desk
    assert desk is not None
    number = desk.calendar.period_at(gw.gateway.clock.now()).number
    assert out["NotifiedEnergy"] == pytest.approx(values[number - 1])
    assert out["PeriodEnd"] - out["PeriodStart"] == timedelta(minutes=15)
    if out["State"] == "no-measurement":
        assert math.isnan(out["RequiredPower"])  # no value is not a zero
    # The live variables follow each snapshot.
    await gw.gateway.pollers["meter1"].wait_snapshot()
    state = await gw.node("meter1.Market.State").read_data_value(raise_on_bad_status=False)
    assert state.Value.Value in ("no-measurement", "advised")
    notified = await gw.node("meter1.Market.NotifiedEnergy").read_value()
    assert notified == pytest.approx(values[number - 1])
    current = await gw.node("meter1.Market.CurrentPower").read_data_value(raise_on_bad_status=False)
    assert current.StatusCode.is_good()
    required = await gw.node("meter1.Market.RequiredPower").read_data_value(raise_on_bad_status=False)
    assert required.StatusCode.is_good() == (state.Value.Value == "advised")
    # A time beyond the running period is refused.
    later = datetime.now(UTC) + timedelta(hours=1)
    refused = await call(gw, "ComputeAdvice", ua.Variant(later, ua.VariantType.DateTime))
    assert refused.StatusCode.name == "BadOutOfRange"
    assert "not in the rest of the running period" in message(refused, 0)


async def test_a_kept_external_value_is_shown_at_start(gw: Running) -> None:
    """A value pushed before a restart is there at once, with its own time (stale by now)."""
    shown = await gw.node("SMX.ExternalData.renewable_share").read_data_value(raise_on_bad_status=False)
    assert shown.Value.Value == 11.0
    assert shown.SourceTimestamp.replace(tzinfo=UTC) == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)
    assert shown.StatusCode.name == "UncertainLastUsableValue"
    assert await gw.node("SMX.ExternalData.renewable_share.Origin").read_value() == "rest"


async def test_external_values_are_written_validated_and_turn_stale(gw: Running) -> None:
    node = gw.node("SMX.ExternalData.spot_price")
    first = await node.read_data_value(raise_on_bad_status=False)
    assert first.StatusCode.name == "BadWaitingForInitialData"
    await node.write_value(ua.DataValue(ua.Variant(120.5, ua.VariantType.Double)))
    value = await node.read_data_value(raise_on_bad_status=False)
    assert value.Value.Value == 120.5
    assert value.StatusCode.is_good()
    assert await gw.node("SMX.ExternalData.spot_price.Origin").read_value() == "opcua"
    state = gw.gateway.external.state("spot_price", gw.gateway.clock.now())
    assert state.value is not None
    assert state.value.value == 120.5
    for bad, expected in (
        (ua.Variant(math.nan, ua.VariantType.Double), "BadOutOfRange"),
        (ua.Variant(5000.0, ua.VariantType.Double), "BadOutOfRange"),
        (ua.Variant("cheap", ua.VariantType.String), "BadTypeMismatch"),
    ):
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await node.write_value(ua.DataValue(bad))
        assert type(refused.value).__name__ == expected
    assert (await node.read_value()) == 120.5  # unchanged
    # A value whose own time is older than FreshFor (900 s for renewable_share) is shown
    # with its time and marked UncertainLastUsableValue.
    share = gw.node("SMX.ExternalData.renewable_share")
    old = datetime.now(UTC) - timedelta(hours=1)
    await share.write_value(ua.DataValue(ua.Variant(42.0, ua.VariantType.Double), SourceTimestamp=old))
    shown = await share.read_data_value(raise_on_bad_status=False)
    assert shown.Value.Value == 42.0
    assert shown.StatusCode.name == "UncertainLastUsableValue"
    assert abs((shown.SourceTimestamp.replace(tzinfo=UTC) - old).total_seconds()) < 0.001
    # Meter values stay read-only.
    with pytest.raises(ua.UaStatusCodeError, match="BadUserAccessDenied"):
        await gw.node("meter1.1-0:32.7.0").write_value(ua.DataValue(ua.Variant(1.0, ua.VariantType.Double)))
