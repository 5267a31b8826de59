"""A Claude Code prompt's usage, whatever export it comes in (issue 20; migration 0014).

Claude Code exports its logs in batches (`OTEL_LOGS_EXPORT_INTERVAL`, 5 s by default), so a
prompt's `claude_code.api_request` records (model, tokens, cost, duration) usually reach the
receiver in a later export than its `claude_code.skill_activated`, perhaps at another replica,
and possibly before it. `telemetry_event` is append-only, so the usage is not written onto the
activation's row. Tables of their own hold it, keyed by the root tenant (the token's),
`session.id` and `prompt.id`:

- `claude_code_prompt`: per prompt, its usage so far (requests, tokens, cost and duration summed,
  the latest request's model) and `first_event_id`, the smallest event id of its activations:
  the one activation analysts see the usage on, so a prompt that activates two skills counts its
  cost once, whatever the arrival order; and `request_keys`, the `api_request` records counted
  into it (`otlp.request_key`), so a retried export adds nothing (`claude_code_request`, a view
  since migration 0022, lists them);
- `claude_code_activation`: per stored activation, its session, prompt and the ids that join
  its user to the analytics rows (`user.account_uuid`, `user.account_id`).

`store` writes them set-wise in the export's own transaction, before it is answered: one
statement writes the activations and adds each prompt's requests with their keys (a second,
only when a prompt had counted some of them already, adds the others). An activation's
export writes its activation row and its prompt's row: no row per request (issue 23). The
analysts' views join `claude_code_prompt` on `first_event_id` (migration 0014).

What waits unmatched is bounded (`sweep`, with the daily retention): a prompt with no activation
`wait_hours` after it was first seen (`CLARESIA_OTLP_USAGE_WAIT_HOURS`, 24) is deleted (most
prompts activate no skill of ours), and the counted request keys of a prompt last counted into
before that are emptied (an export retried later than that would count again: Claude Code
retries within minutes); prompts and activations before the retention bound go too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, text

from claresia_sync.db import binary_arrays
from claresia_sync.db.binary_arrays import TextArray, int8_array, text_array

# One statement per export: the activations' rows (`activations`), then each prompt's upsert
# with the usage of its requests in this export and their keys, unless the prompt has counted
# one of them already (a retry): such a prompt is left as it is (but locked: ON CONFLICT DO
# UPDATE locks the rows its WHERE refuses) and `store` adds only its uncounted requests in a
# second pass. The activation arrays serve the activation rows and the prompts' first event
# ids. Rows in key order: writers with overlapping exports wait for one another, they do not
# deadlock.
_STORE = """
WITH activations AS (
    INSERT INTO claude_code_activation
        (event_id, tenant_slug, session_id, prompt_id, occurred_at, account_uuid, account_id)
    SELECT * FROM unnest(%(event_id)b::text[], %(tenant_slug)b::text[], %(session_id)b::text[],
                         %(prompt_id)b::text[], %(occurred_at)b::timestamptz[],
                         %(account_uuid)b::text[], %(account_id)b::text[])
    ON CONFLICT (event_id) DO NOTHING
), sums AS (
    SELECT tenant_slug, session_id, prompt_id, count(*) AS requests,
           array_agg(request_key) AS request_keys,
           sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
           sum(cost_usd) AS cost_usd, sum(duration_ms) AS duration_ms,
           (array_agg(model ORDER BY occurred_at DESC) FILTER (WHERE model IS NOT NULL))[1]
               AS model,
           max(occurred_at) FILTER (WHERE model IS NOT NULL) AS model_at
      FROM unnest(%(u_tenant)b::text[], %(u_session)b::text[], %(u_prompt)b::text[],
                  %(u_key)b::bigint[], %(u_at)b::timestamptz[], %(u_model)b::text[],
                  %(u_in)b::bigint[], %(u_out)b::bigint[], %(u_cost)b::text[]::numeric[],
                  %(u_ms)b::bigint[])
           AS u(tenant_slug, session_id, prompt_id, request_key, occurred_at, model,
                input_tokens, output_tokens, cost_usd, duration_ms)
     GROUP BY 1, 2, 3
), firsts AS (
    SELECT tenant_slug, session_id, prompt_id, min(event_id) AS first_event_id
      FROM unnest(%(tenant_slug)b::text[], %(session_id)b::text[], %(prompt_id)b::text[],
                  %(event_id)b::text[])
           AS f(tenant_slug, session_id, prompt_id, event_id)
     GROUP BY 1, 2, 3
)
INSERT INTO claude_code_prompt AS p
    (tenant_slug, session_id, prompt_id, first_event_id, requests, input_tokens,
     output_tokens, cost_usd, duration_ms, model, model_at, request_keys, counted_at)
SELECT tenant_slug, session_id, prompt_id, f.first_event_id, coalesce(s.requests, 0),
       coalesce(s.input_tokens, 0), coalesce(s.output_tokens, 0), coalesce(s.cost_usd, 0),
       coalesce(s.duration_ms, 0), s.model, s.model_at,
       coalesce(s.request_keys, '{}'), CASE WHEN s.requests > 0 THEN now() END
  FROM sums s FULL JOIN firsts f USING (tenant_slug, session_id, prompt_id)
 ORDER BY 1, 2, 3
ON CONFLICT (tenant_slug, session_id, prompt_id) DO UPDATE SET
    first_event_id = least(p.first_event_id, EXCLUDED.first_event_id),
    requests = p.requests + EXCLUDED.requests,
    input_tokens = p.input_tokens + EXCLUDED.input_tokens,
    output_tokens = p.output_tokens + EXCLUDED.output_tokens,
    cost_usd = p.cost_usd + EXCLUDED.cost_usd,
    duration_ms = p.duration_ms + EXCLUDED.duration_ms,
    model = CASE WHEN p.model_at IS NULL OR EXCLUDED.model_at >= p.model_at
                 THEN coalesce(EXCLUDED.model, p.model) ELSE p.model END,
    model_at = greatest(p.model_at, EXCLUDED.model_at),
    request_keys = p.request_keys || EXCLUDED.request_keys,
    counted_at = coalesce(EXCLUDED.counted_at, p.counted_at)
 WHERE NOT p.request_keys && EXCLUDED.request_keys
"""
# The keys counted so far of these prompts (the second pass; they are locked by the first).
_COUNTED = """
SELECT p.tenant_slug, p.session_id, p.prompt_id, p.request_keys
  FROM claude_code_prompt p
  JOIN unnest(%(u_tenant)b::text[], %(u_session)b::text[], %(u_prompt)b::text[])
       AS u(tenant_slug, session_id, prompt_id) USING (tenant_slug, session_id, prompt_id)
"""


def _costs(values: list[Any]) -> TextArray:
    """Decimals as text, which the statement reads as numeric: exactly the same value, and
    their binary form is built in Python by psycopg (~2 us each)."""
    return text_array(list(map(str, values)))


# Each parameter: the column it reads, and how the column is sent (`binary_arrays`; a list
# of datetimes goes through psycopg, whose dumping of them is as fast).
_Column = tuple[str, Callable[[list[Any]], Any]]
_ACTIVATION_PARAMS: dict[str, _Column] = {
    "event_id": ("event_id", text_array),
    "tenant_slug": ("tenant_slug", text_array),
    "session_id": ("session_id", text_array),
    "prompt_id": ("prompt_id", text_array),
    "occurred_at": ("occurred_at", list),
    "account_uuid": ("account_uuid", text_array),
    "account_id": ("account_id", text_array),
}
_USAGE_PARAMS: dict[str, _Column] = {
    "u_tenant": ("tenant_slug", text_array),
    "u_session": ("session_id", text_array),
    "u_prompt": ("prompt_id", text_array),
    "u_key": ("request_key", int8_array),
    "u_at": ("occurred_at", list),
    "u_model": ("model", text_array),
    "u_in": ("input_tokens", int8_array),
    "u_out": ("output_tokens", int8_array),
    "u_cost": ("cost_usd", _costs),
    "u_ms": ("duration_ms", int8_array),
}
_COUNTED_PARAMS = {p: _USAGE_PARAMS[p] for p in ("u_tenant", "u_session", "u_prompt")}
_PROMPT = itemgetter("tenant_slug", "session_id", "prompt_id")
_REQUEST = itemgetter("tenant_slug", "session_id", "prompt_id", "request_key")

_SWEEP = (
    # counted requests past the wait: a retry is no longer expected (how many keys emptied)
    text(
        """
        WITH swept AS (
            UPDATE claude_code_prompt p SET request_keys = '{}'
              FROM claude_code_prompt o
             WHERE (o.tenant_slug, o.session_id, o.prompt_id)
                 = (p.tenant_slug, p.session_id, p.prompt_id)
               AND p.counted_at < :waited AND cardinality(p.request_keys) > 0
            RETURNING cardinality(o.request_keys) AS n
        )
        SELECT coalesce(sum(n), 0) FROM swept
        """
    ),
    # prompts that found no activation of ours within the wait
    text("DELETE FROM claude_code_prompt WHERE first_event_id IS NULL AND first_seen_at < :waited"),
    text("DELETE FROM claude_code_prompt WHERE first_seen_at < :bound"),
    text("DELETE FROM claude_code_activation WHERE occurred_at < :bound"),
)


def _columns(rows: Sequence[dict[str, Any]], names: Mapping[str, _Column]) -> dict[str, Any]:
    return {param: send(list(map(itemgetter(name), rows))) for param, (name, send) in names.items()}


def store(
    conn: Connection, activations: Sequence[dict[str, Any]], usage: Sequence[dict[str, Any]]
) -> None:
    """Write these rows in the caller's transaction (see the module doc); what was stored
    already is left, a request counted already is not added again."""
    if not activations and not usage:
        return
    dbapi = conn.connection.driver_connection
    assert dbapi is not None
    activations = sorted(activations, key=itemgetter("event_id"))
    usage = list({_REQUEST(u): u for u in usage}.values())  # a retry in the same batch
    prompts = {_PROMPT(r) for r in activations} | {_PROMPT(u) for u in usage}
    with dbapi.cursor() as cur:
        binary_arrays.register(cur)
        params = _columns(activations, _ACTIVATION_PARAMS)
        cur.execute(_STORE, {**params, **_columns(usage, _USAGE_PARAMS)})
        if cur.rowcount == len(prompts):
            return  # every prompt inserted or updated: none had counted any of these already
        # A retry: some prompt counted some of these requests already. Add only the others.
        cur.execute(_COUNTED, _columns(usage, _COUNTED_PARAMS))
        counted = {(t, s, p, k) for t, s, p, keys in cur.fetchall() for k in keys}
        fresh = [u for u in usage if _REQUEST(u) not in counted]
        cur.execute(_STORE, {**params, **_columns(fresh, _USAGE_PARAMS)})


@dataclass
class Swept:
    requests: int = 0
    unmatched: int = 0
    """Prompts deleted because no activation of ours came within the wait."""
    expired: int = 0
    """Prompts and activations before the retention bound."""


def sweep(
    engine: Engine, *, wait_hours: int, bound: dt.datetime, now: dt.datetime | None = None
) -> Swept:
    """Delete what waited `wait_hours` unmatched, and what is older than `bound` (the
    retention's)."""
    params = {
        "waited": (now or dt.datetime.now(dt.UTC)) - dt.timedelta(hours=wait_hours),
        "bound": bound,
    }
    with engine.begin() as conn:
        requests = int(conn.execute(_SWEEP[0], params).scalar_one())
        counts = [conn.execute(statement, params).rowcount for statement in _SWEEP[1:]]
    return Swept(requests, counts[0], counts[1] + counts[2])
