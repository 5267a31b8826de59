"""The Command Center names the telemetry sources as the report does (one list)."""

from __future__ import annotations

from typing import get_args

from claresia_sync.center.api import SourceName
from claresia_sync.telemetry.report import SOURCES


def test_the_api_source_filter_takes_exactly_the_reports_sources() -> None:
    assert list(get_args(SourceName)) == list(SOURCES)
