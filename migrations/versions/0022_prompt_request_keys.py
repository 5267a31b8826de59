"""A prompt's counted requests on its own row (issue 23; telemetry/otlp_usage.py).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-07

- `claude_code_prompt.request_keys` (bigint[]): the `api_request` records counted into the
  prompt, appended in the same upsert that adds their usage, so a retried export adds nothing;
  `counted_at`: when one was last counted (the usage wait runs from there). Each activation's
  export wrote about two `claude_code_request` rows (two index entries each) besides its
  prompt's row; now it writes the prompt's row alone.
- `claude_code_request` becomes a view over those arrays (same columns; `received_at` is the
  prompt's `counted_at`): what analysts read there is unchanged.
- Existing rows are moved: each prompt gets its counted keys and their latest `received_at`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

REQUEST_VIEW = """
CREATE VIEW claude_code_request AS
SELECT tenant_slug, session_id, prompt_id, unnest(request_keys) AS request_key,
       counted_at AS received_at
  FROM claude_code_prompt;
"""

GRANT = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'claresia_analyst') THEN
        GRANT SELECT ON claude_code_request TO claresia_analyst;
    END IF;
END $$;
"""


def upgrade() -> None:
    op.add_column(
        "claude_code_prompt",
        sa.Column(
            "request_keys",
            postgresql.ARRAY(sa.BigInteger()),
            server_default=sa.text("'{}'::bigint[]"),
            nullable=False,
        ),
    )
    op.add_column(
        "claude_code_prompt", sa.Column("counted_at", sa.DateTime(timezone=True), nullable=True)
    )
    op.execute(
        """
        UPDATE claude_code_prompt p
           SET request_keys = r.request_keys, counted_at = r.counted_at
          FROM (SELECT tenant_slug, session_id, prompt_id,
                       array_agg(request_key ORDER BY request_key) AS request_keys,
                       max(received_at) AS counted_at
                  FROM claude_code_request
                 GROUP BY 1, 2, 3) r
         WHERE (p.tenant_slug, p.session_id, p.prompt_id)
             = (r.tenant_slug, r.session_id, r.prompt_id)
        """
    )
    op.drop_table("claude_code_request")
    op.execute(REQUEST_VIEW)
    op.execute(GRANT)


def downgrade() -> None:
    op.execute("DROP VIEW claude_code_request")
    op.create_table(
        "claude_code_request",
        sa.Column("tenant_slug", sa.Text(), nullable=False),
        sa.Column("session_id", sa.Text(), nullable=False),
        sa.Column("prompt_id", sa.Text(), nullable=False),
        sa.Column("request_key", sa.BigInteger(), nullable=False),
        sa.Column(
            "received_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint(
            "tenant_slug",
            "session_id",
            "prompt_id",
            "request_key",
            name=op.f("pk_claude_code_request"),
        ),
    )
    op.create_index("ix_claude_code_request_received_at", "claude_code_request", ["received_at"])
    op.execute(
        """
        INSERT INTO claude_code_request
            (tenant_slug, session_id, prompt_id, request_key, received_at)
        SELECT DISTINCT tenant_slug, session_id, prompt_id, unnest(request_keys),
               coalesce(counted_at, first_seen_at)
          FROM claude_code_prompt
        """
    )
    op.execute(GRANT)
    op.drop_column("claude_code_prompt", "counted_at")
    op.drop_column("claude_code_prompt", "request_keys")
