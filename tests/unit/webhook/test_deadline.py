from __future__ import annotations

import pytest

from zastava.webhook.deadline import Deadline, budget_seconds, parse_go_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("10s", 10.0),
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("2.5s", 2.5),
        ("30", 30.0),
        ("1h", 3600.0),
        ("250us", 0.00025),
    ],
)
def test_go_durations(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "s", "10", "10x", "-1s", "1s2", "s10", "1" * 100])
def test_invalid_durations(text: str | None) -> None:
    if text == "10":
        assert parse_go_duration(text) == 10.0
    else:
        assert parse_go_duration(text) is None


def test_budget() -> None:
    assert budget_seconds("10s", 0.5, 5) == 5  # capped by backend.requestTimeoutSeconds
    assert budget_seconds("2s", 0.5, 5) == 1.5  # API server timeout minus margin
    assert budget_seconds(None, 0.5, 30) == 9.5  # default 10 s
    assert budget_seconds("garbage", 0.5, 30) == 9.5
    assert budget_seconds("5m", 0.5, 300) == 29.5  # the API server never waits more than 30 s
    assert budget_seconds("100ms", 0.5, 5) == 0.05  # never below 50 ms


def test_deadline() -> None:
    deadline = Deadline.after(60)
    assert 59 < deadline.remaining() <= 60 and not deadline.expired()
    assert Deadline.after(-1).remaining() == 0 and Deadline.after(-1).expired()
