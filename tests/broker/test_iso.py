"""The REST API's timestamps: ISO 8601 in UTC with milliseconds, from epoch ms."""

from datetime import UTC, datetime

import pytest

from wonderq.broker.wire import iso


@pytest.mark.parametrize("ms", [0, 999, 1000, 1_764_547_200_123, 1_767_225_599_999, 4_102_444_800_000])
def test_iso_matches_datetime(ms: int) -> None:
    expected = datetime.fromtimestamp(ms // 1000, UTC).replace(microsecond=ms % 1000 * 1000)
    assert iso(ms) == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_iso_of_none_is_none() -> None:
    assert iso(None) is None
