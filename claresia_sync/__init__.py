"""claresia-sync: distributes Claresia skills into Anthropic organisations and ingests telemetry."""

__version__ = "0.1.0"
