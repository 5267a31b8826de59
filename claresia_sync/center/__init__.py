"""The Command Center: the operator HTTP API, its OpenAPI document and the console pages.

Served by `claresia-sync run` on its own address (`CLARESIA_CENTER_HOST`/`_PORT`, loopback by
default) when at least one token is configured, or alone by `claresia-sync center`. Every
route calls the same functions as the command line (the job queue, the planner, status, the
quarantine replay, the telemetry report); nothing here is a second copy of them.
"""
