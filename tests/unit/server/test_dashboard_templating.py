"""The filters the dashboard's templates format values with."""

from __future__ import annotations

from datetime import datetime

import pytest

from mlzen.server.dashboard import templating


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "—"), (0.0123, "12 ms"), (4.25, "4.2 s"), (185, "3 min 5 s"), (7620, "2 h 7 min")],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert templating.duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, "—"),
        (512, "512 B"),
        (2242, "2.2 KiB"),
        (3 * 1024**3 // 2, "1.5 GiB"),
        (5 * 1024**4, "5120.0 GiB"),
    ],
)
def test_size(size: int | None, text: str) -> None:
    assert templating.size(size) == text


def test_times_and_type_names() -> None:
    start = datetime(2026, 1, 2, 3, 4, 5)
    assert templating.when(start) == "2026-01-02 03:04:05"
    assert templating.span(start, datetime(2026, 1, 2, 3, 4, 7)) == 2.0
    assert templating.span(start, None) is None
    assert templating.short_type("pandas.core.frame.DataFrame") == "DataFrame"
    assert templating.short_type("int") == "int"


def test_templates_escape_what_they_show() -> None:
    template = templating.templates.env.from_string("{{ value }}")
    assert template.render(value="<b>&") == "&lt;b&gt;&amp;"
