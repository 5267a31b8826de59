"""`skill_usage_daily` stores each field once (bench/RESULTS.md, "Skills analytics backfill").

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30

A row took ~1,280 bytes with its indexes, ~870 of them the `raw` copy of the answer whose fields
the columns already hold. Now:
- `raw` keeps only what no column holds (`analytics.rest_of_row`; the SQL below is the same rule
  for the rows already stored), null when nothing is left;
- the answer's `enable_count`, `share_status` and Office sessions per product get columns;
- `row_hash` is a bigint, the first 8 bytes of the same sha256 (the first 16 of its 32 hex
  characters), so a row read again after the upgrade is not taken for a revision;
- the surrogate `id` and its index go: the unique key becomes the primary key.
One rewrite of the table (`ALTER TABLE ... TYPE ... USING`: the new columns, `raw` and `row_hash`
from the old row), then the primary key's index, in the migration's transaction.

Downgrade: `raw` is rebuilt from the columns and the rest (nulls and the cents' text format are
not restored: the amounts are), `row_hash` back to hex (16 characters: the next read of a day in
the window counts its rows as revised once).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OFFICE = ("excel", "outlook", "powerpoint", "word")
UNIQUE = "uq_skill_usage_daily_org_id_day_breakdown_skill_name_user_id_rbac_group_id"
KEY = ("org_id", "day", "breakdown", "skill_name", "user_id", "rbac_group_id")

# A count the answer may carry: an integer JSON number in int4 range, else null (kept in raw).
# A cents string equal in value to the stored dollars x 100 (the pattern keeps the cast safe).
FUNCTIONS = r"""
CREATE TYPE pg_temp.usage_columns AS (
    skill_name text, published_name text, user_id text, rbac_group_id text, currency text,
    invocation_count integer, distinct_user_count integer, chat_conversations integer,
    claude_code_sessions integer, cowork_sessions integer,
    estimated_overage_spend_usd numeric, attributed_list_price_usd numeric);
CREATE FUNCTION pg_temp.usage_count(v jsonb) RETURNS integer LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN jsonb_typeof(v) = 'number' AND v::text ~ '^[0-9]{1,10}$'
                     AND v::text::bigint <= 2147483647 THEN v::text::integer END
$$;
CREATE FUNCTION pg_temp.usage_cents(v jsonb, dollars numeric) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(jsonb_typeof(v) = 'string'
        AND v #>> '{}' ~ '^\s*[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]{1,4})?\s*$'
        AND (v #>> '{}')::numeric = dollars * 100, false)
$$;
CREATE FUNCTION pg_temp.usage_prune(j jsonb) RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF jsonb_typeof(j) <> 'object' THEN RETURN j; END IF;
    RETURN coalesce((SELECT jsonb_object_agg(key, v)
                       FROM (SELECT key, pg_temp.usage_prune(value) AS v FROM jsonb_each(j)) e
                      WHERE v <> 'null' AND v <> '{}'), '{}');
END
$$;
CREATE FUNCTION pg_temp.usage_rest(raw jsonb, s usage_columns) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    r jsonb := raw;
    pair text[];
    product text;
BEGIN
    FOREACH pair SLICE 1 IN ARRAY ARRAY[
        ['skill_name', s.skill_name], ['skill_display_name', s.published_name],
        ['user_id', s.user_id], ['rbac_group_id', s.rbac_group_id],
        ['currency', s.currency]]
    LOOP
        IF r -> pair[1] = to_jsonb(pair[2]) THEN r := r - pair[1]; END IF;
    END LOOP;
    IF jsonb_typeof(r -> 'share_status') = 'string' THEN r := r - 'share_status'; END IF;
    IF pg_temp.usage_count(r -> 'enable_count') IS NOT NULL THEN r := r - 'enable_count'; END IF;
    IF r -> 'invocation_count' = to_jsonb(s.invocation_count) THEN
        r := r - 'invocation_count';
    END IF;
    IF r -> 'distinct_user_count' = to_jsonb(s.distinct_user_count) THEN
        r := r - 'distinct_user_count';
    END IF;
    IF r #> '{chat_metrics,distinct_conversation_skill_used_count}'
            = to_jsonb(s.chat_conversations) THEN
        r := r #- '{chat_metrics,distinct_conversation_skill_used_count}';
    END IF;
    IF r #> '{claude_code_metrics,distinct_session_skill_used_count}'
            = to_jsonb(s.claude_code_sessions) THEN
        r := r #- '{claude_code_metrics,distinct_session_skill_used_count}';
    END IF;
    IF r #> '{cowork_metrics,distinct_session_skill_used_count}'
            = to_jsonb(s.cowork_sessions) THEN
        r := r #- '{cowork_metrics,distinct_session_skill_used_count}';
    END IF;
    FOREACH product IN ARRAY ARRAY['excel', 'outlook', 'powerpoint', 'word'] LOOP
        IF pg_temp.usage_count(r #> ARRAY['office_metrics', product,
                                          'distinct_session_skill_used_count']) IS NOT NULL THEN
            r := r #- ARRAY['office_metrics', product, 'distinct_session_skill_used_count'];
        END IF;
    END LOOP;
    IF pg_temp.usage_cents(r -> 'estimated_overage_spend', s.estimated_overage_spend_usd) THEN
        r := r - 'estimated_overage_spend';
    END IF;
    IF pg_temp.usage_cents(r -> 'attributed_list_price', s.attributed_list_price_usd) THEN
        r := r - 'attributed_list_price';
    END IF;
    RETURN nullif(pg_temp.usage_prune(r), '{}');
END
$$;
"""

_S = "distinct_session_skill_used_count"
_office_counts = {p: f"pg_temp.usage_count(raw #> '{{office_metrics,{p},{_S}}}')" for p in OFFICE}
_office_expected = ", ".join(
    f"'{p}', jsonb_build_object('{_S}', {count})" for p, count in _office_counts.items()
)
# The usual row, every field held (all built-in functions: fast): those fields taken out of
# the answer leave nothing. Otherwise `usage_rest` says what is left.
_HELD_WHOLE = {
    "skill_name": "raw -> 'skill_name' = to_jsonb(skill_name)",
    "skill_display_name": "raw -> 'skill_display_name' = to_jsonb(published_name)",
    "user_id": "raw -> 'user_id' = to_jsonb(user_id)",
    "rbac_group_id": "raw -> 'rbac_group_id' = to_jsonb(rbac_group_id)",
    "currency": "raw -> 'currency' = to_jsonb(currency)",
    "invocation_count": "raw -> 'invocation_count' = to_jsonb(invocation_count)",
    "distinct_user_count": "raw -> 'distinct_user_count' = to_jsonb(distinct_user_count)",
    "enable_count": "pg_temp.usage_count(raw -> 'enable_count') IS NOT NULL",
    "share_status": "jsonb_typeof(raw -> 'share_status') = 'string'",
    "chat_metrics": "raw -> 'chat_metrics' = "
    "jsonb_build_object('distinct_conversation_skill_used_count', chat_conversations)",
    "claude_code_metrics": f"raw -> 'claude_code_metrics' = "
    f"jsonb_build_object('{_S}', claude_code_sessions)",
    "cowork_metrics": f"raw -> 'cowork_metrics' = jsonb_build_object('{_S}', cowork_sessions)",
    "office_metrics": f"raw -> 'office_metrics' = jsonb_build_object({_office_expected})",
    "estimated_overage_spend": "pg_temp.usage_cents(raw -> 'estimated_overage_spend', "
    "estimated_overage_spend_usd)",
    "attributed_list_price": "pg_temp.usage_cents(raw -> 'attributed_list_price', "
    "attributed_list_price_usd)",
}
_held = ",\n        ".join(f"CASE WHEN {test} THEN '{k}' END" for k, test in _HELD_WHOLE.items())
_REST = f"""
CASE WHEN jsonb_strip_nulls(raw) - array_remove(ARRAY[
        {_held}], NULL) = '{{}}' THEN NULL
     ELSE pg_temp.usage_rest(raw, ROW(
        skill_name, published_name, user_id, rbac_group_id, currency, invocation_count,
        distinct_user_count, chat_conversations, claude_code_sessions, cowork_sessions,
        estimated_overage_spend_usd, attributed_list_price_usd)::pg_temp.usage_columns) END
"""
_office_using = ",\n    ".join(
    f"ALTER COLUMN office_{p}_sessions TYPE integer USING {count}"
    for p, count in _office_counts.items()
)
# One rewrite of the table: each USING reads the row as it was (the old `raw`).
CONVERT = f"""
ALTER TABLE skill_usage_daily
    ALTER COLUMN enable_count TYPE integer USING pg_temp.usage_count(raw -> 'enable_count'),
    ALTER COLUMN share_status TYPE text USING
        CASE WHEN jsonb_typeof(raw -> 'share_status') = 'string' THEN raw ->> 'share_status' END,
    {_office_using},
    ALTER COLUMN raw TYPE jsonb USING {_REST},
    ALTER COLUMN row_hash TYPE bigint USING ('x' || left(row_hash, 16))::bit(64)::bigint
"""

_office_json = ", ".join(
    f"'{p}', jsonb_build_object('distinct_session_skill_used_count', office_{p}_sessions)"
    f" || coalesce(raw #> '{{office_metrics,{p}}}', '{{}}')"
    for p in OFFICE
)
_METRICS = {
    "chat_metrics": ("distinct_conversation_skill_used_count", "chat_conversations"),
    "claude_code_metrics": ("distinct_session_skill_used_count", "claude_code_sessions"),
    "cowork_metrics": ("distinct_session_skill_used_count", "cowork_sessions"),
}
_metrics_json = ",\n    ".join(
    f"'{name}', jsonb_build_object('{key}', {column}) || coalesce(raw -> '{name}', '{{}}')"
    for name, (key, column) in _METRICS.items()
)
# The answer again (downgrade): the columns' fields with what `raw` kept (merged into the
# objects the columns come from).
REBUILD = f"""
UPDATE skill_usage_daily SET raw = jsonb_strip_nulls(jsonb_build_object(
    'skill_name', skill_name,
    'skill_display_name', nullif(published_name, skill_name),
    'user_id', nullif(user_id, ''),
    'rbac_group_id', nullif(rbac_group_id, ''),
    'invocation_count', invocation_count,
    'distinct_user_count', distinct_user_count,
    'enable_count', enable_count,
    'share_status', share_status,
    {_metrics_json},
    'office_metrics', coalesce(raw -> 'office_metrics', '{{}}')
                      || jsonb_build_object({_office_json}),
    'estimated_overage_spend', (estimated_overage_spend_usd * 100)::text,
    'attributed_list_price', (attributed_list_price_usd * 100)::text,
    'currency', currency
)) || (coalesce(raw, '{{}}')
       - '{{chat_metrics,claude_code_metrics,cowork_metrics,office_metrics}}'::text[])
"""  # noqa: S608


def upgrade() -> None:
    op.add_column("skill_usage_daily", sa.Column("enable_count", sa.Integer(), nullable=True))
    op.add_column("skill_usage_daily", sa.Column("share_status", sa.Text(), nullable=True))
    for product in OFFICE:
        op.add_column(
            "skill_usage_daily",
            sa.Column(f"office_{product}_sessions", sa.Integer(), nullable=True),
        )
    op.alter_column("skill_usage_daily", "raw", nullable=True)
    op.drop_constraint("pk_skill_usage_daily", "skill_usage_daily", type_="primary")
    op.drop_column("skill_usage_daily", "id")
    op.drop_constraint(op.f(UNIQUE), "skill_usage_daily", type_="unique")
    # One rewrite of the table (the dropped `id` leaves no space behind) and of its one index
    # left; the key's index is built once, after it.
    op.execute(FUNCTIONS)
    op.execute(CONVERT)
    op.execute(
        "DROP FUNCTION pg_temp.usage_rest(jsonb, pg_temp.usage_columns), "
        "pg_temp.usage_cents(jsonb, numeric), pg_temp.usage_count(jsonb), "
        "pg_temp.usage_prune(jsonb); DROP TYPE pg_temp.usage_columns"
    )
    op.create_primary_key("pk_skill_usage_daily", "skill_usage_daily", list(KEY))


def downgrade() -> None:
    op.alter_column(
        "skill_usage_daily",
        "row_hash",
        type_=sa.Text(),
        postgresql_using="lpad(to_hex(row_hash), 16, '0')",
    )
    op.execute(REBUILD)
    op.alter_column("skill_usage_daily", "raw", nullable=False)
    op.drop_constraint("pk_skill_usage_daily", "skill_usage_daily", type_="primary")
    op.create_unique_constraint(op.f(UNIQUE), "skill_usage_daily", list(KEY))
    op.add_column(
        "skill_usage_daily",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
    )
    op.create_primary_key("pk_skill_usage_daily", "skill_usage_daily", ["id"])
    for column in ("enable_count", "share_status", *(f"office_{p}_sessions" for p in OFFICE)):
        op.drop_column("skill_usage_daily", column)
