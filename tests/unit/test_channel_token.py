"""Security token lifetimes of the guarded OPC UA channels (gateway/opcua/guard.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from asyncua import ua

from gateway.opcua.guard import MAX_TOKEN_LIFETIME_MS, token_expired

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def token(lifetime_ms: int, created: datetime | None = T0) -> ua.ChannelSecurityToken:
    return ua.ChannelSecurityToken(ChannelId=1, TokenId=1, CreatedAt=created, RevisedLifetime=lifetime_ms)


def test_a_token_lives_its_lifetime_and_a_quarter_more() -> None:
    ten_minutes = token(MAX_TOKEN_LIFETIME_MS)
    assert not token_expired(ten_minutes, T0 + timedelta(minutes=10))
    assert not token_expired(ten_minutes, T0 + timedelta(minutes=12, seconds=30))  # the 25 % grace
    assert token_expired(ten_minutes, T0 + timedelta(minutes=12, seconds=31))


def test_asyncua_naive_times_are_utc_and_a_token_without_lifetime_is_not_judged() -> None:
    naive = token(60_000, T0.replace(tzinfo=None))
    assert token_expired(naive, T0 + timedelta(seconds=76))
    assert not token_expired(naive, T0 + timedelta(seconds=74))
    assert not token_expired(token(0), T0 + timedelta(days=1))
    assert not token_expired(token(60_000, None), T0 + timedelta(days=1))
