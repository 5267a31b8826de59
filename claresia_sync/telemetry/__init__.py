"""Telemetry (docs/interfaces.md section 4), one stage per module: `poller` (audit-log pages, the
checkpoint) -> `normalise` (`fn_telemetry_event`: a row, a quarantine entry or a skip) -> `load`
(`insert_events`: rows into `telemetry_event`); then `quarantine` (replay), `retention` and
`report`."""
