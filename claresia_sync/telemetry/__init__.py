"""Telemetry: the audit-log poller, the normaliser (`fn_telemetry_event`), retention and the
report (issue 6; CONTRACT.md section 4)."""
