"""Telemetry: remove the users' emails already stored in raw events (docs/interfaces.md section 4).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30

Until this revision the poller kept `actor.email` in `telemetry_event.raw` and in the
quarantine's raw JSON even when emails were not to be stored (`actor_email` was empty), and the
`claresia_analyst` role could read them there. This removes them:
- `telemetry_event`: from every row whose `actor_email` is empty, i.e. every row ingested while
  storing emails was not configured (rows ingested with `CLARESIA_TELEMETRY_STORE_EMAILS=true`
  keep theirs). The append-only guard of 0002 refuses any UPDATE, so its trigger is disabled for
  this one statement and enabled again, all inside the migration's transaction: the ALTER TABLE
  locks the table against every other writer until the commit, and no other session ever sees
  the trigger disabled. (ALTER TABLE on the partitioned table reaches every partition.)
- `telemetry_quarantine`: from every entry, unless `CLARESIA_TELEMETRY_STORE_EMAILS` is true
  where the migration runs (quarantine entries do not record under which setting they came).
Downgrade keeps the rows as they are: a removed email cannot be restored.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from claresia_sync.config import load_settings

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCRUB_EVENTS = """
ALTER TABLE telemetry_event DISABLE TRIGGER telemetry_event_no_update;
UPDATE telemetry_event SET raw = raw #- '{actor,email}'
 WHERE actor_email IS NULL
   AND jsonb_typeof(raw -> 'actor') = 'object' AND (raw -> 'actor') ? 'email';
ALTER TABLE telemetry_event ENABLE TRIGGER telemetry_event_no_update;
"""

SCRUB_QUARANTINE = """
UPDATE telemetry_quarantine SET raw = raw #- '{actor,email}'
 WHERE jsonb_typeof(raw -> 'actor') = 'object' AND (raw -> 'actor') ? 'email';
"""


def upgrade() -> None:
    op.execute(SCRUB_EVENTS)
    if not load_settings().telemetry_store_emails:  # a migration is an entry point
        op.execute(SCRUB_QUARANTINE)


def downgrade() -> None:
    pass  # a removed email cannot be restored; the rows stay valid as they are
