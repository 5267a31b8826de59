"""The applier: run the items of a plan against a publish target, each on its own.

- Bounded concurrency: every API call holds a slot of the run's (or the replica's) bound, and of
  its organisation's (`CallBounds`): a slow organisation cannot take the slots of the others.
- Isolation: an item's failure is caught and becomes its result; the others go on.
- Idempotence: a create whose name is taken adopts the existing skill if the target proves it
  ours (org-skills: the 409's `existing_id`, else by name) and brings it to the desired content
  and access, so a crash between create and record, or a retried POST, never makes a twin. A
  skill gone on delete counts as done; gone on a new version or access change (deleted behind
  our back) falls back to creating the skill.
- What a created or adopted skill still needs is `planner.changes_needed`, the planner's own
  decision.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from claresia_sync.publish.desired import DesiredSkill
from claresia_sync.publish.planner import Changes, Op, PlanItem, changes_needed
from claresia_sync.publish.records import PublicationState
from claresia_sync.publish.targets import (
    LiveSkill,
    NameTaken,
    PublishTarget,
    SkillGone,
    TargetError,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16
# Items under way per call slot (see `CallBounds`).
STARTS_PER_SLOT = 2


class Outcome:
    CREATED = "created"
    UPDATED = "updated"
    ACL = "acl"
    DELETED = "deleted"
    UNCHANGED = "unchanged"
    FAILED = "failed"


OUTCOMES = ("created", "updated", "acl", "deleted", "unchanged", "failed")


@dataclass
class ItemResult:
    item: PlanItem
    outcome: str
    live: LiveSkill | None
    """What is live after the item (or, if it failed, as far as is known)."""
    error: str | None = None
    live_at: dt.datetime | None = None
    """When the skill was live with its access (or gone, for a delete), if this run wrote."""
    retryable: bool = False
    """It failed for a reason that may pass (429, 5xx, no answer): worth another try."""

    def __repr__(self) -> str:
        return f"ItemResult({self.outcome} {self.item.name}: {self.error or ''})"

    def state(self) -> PublicationState | None:
        """The publication row to record, or None (nothing to record for this item)."""
        item = self.item
        if item.tenant_id is None or item.skill_id is None:
            return None
        if self.outcome == Outcome.UNCHANGED and not item.reason:
            return None  # the row is already right: a no-op run writes nothing
        deleted = self.outcome == Outcome.DELETED or (
            item.op == Op.UNCHANGED and item.desired is None
        )
        if deleted:
            status = "unpublished"
        elif self.outcome == Outcome.FAILED:
            status = "failed"
        else:
            status = "published"
        live = None if deleted else self.live
        return PublicationState(
            tenant_id=item.tenant_id,
            skill_id=item.skill_id,
            published_name=item.name,
            status=status,
            remote_skill_id=live.remote_id if live else None,
            remote_version=live.version if live else None,
            content_hash=live.content_hash if live else None,
            access=live.access if live else None,
            last_error=self.error,
            published_at=self.live_at if status == "published" else None,
            target=item.target,
            release=_release_of(item, live),
        )


def _release_of(item: PlanItem, live: LiveSkill | None) -> int | None:
    """The release of the live content: the desired one's, if that is what is live."""
    desired = item.desired
    if live is None or desired is None or live.content_hash != desired.content_hash:
        return None
    return desired.release


class _Failed(Exception):
    """An item failed for a reason that is not a target error (the message says why)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CallBounds:
    """API calls in flight at most: `concurrency` in all, and `per_org` in each organisation
    (its rate limit; None: no bound of its own). One value is shared by every run of a
    replica (the daemon's jobs and units, `republish --all`'s units), so the bound is the
    replica's and not each run's, and a slow organisation holds at most `per_org` of its slots.
    An organisation's slot is taken first: a call waiting for its organisation holds none of
    the replica's. Items start (`start`) under twice the two bounds (`STARTS_PER_SLOT`): an
    item's calls go one after another, so with as many items as slots the last few items of a
    run call alone while the other slots idle (50 plugins of 3 calls at 16 in flight: 12 rounds
    of calls, against 10 with twice as many items waiting for a slot). An item whose first call
    has not got its slot still sees a cancel (`Applier.apply`'s `stop`)."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY, per_org: int | None = None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if per_org is not None and per_org < 1:
            raise ValueError("per_org must be at least 1 (or None: no bound per organisation)")
        self.concurrency = concurrency
        self.per_org = per_org
        self._calls = _Bound(concurrency, per_org)
        self._starts = _Bound(
            STARTS_PER_SLOT * concurrency, None if per_org is None else STARTS_PER_SLOT * per_org
        )
        self._requests: dict[str, asyncio.Semaphore] = {}

    def requests(self, org_id: str) -> asyncio.Semaphore | None:
        """The bound of `org_id`'s HTTP requests in flight (`api.retry.org_requests`):
        a target may send several requests in one call (reads at once), and the organisation's
        rate limit counts requests. None without a bound per organisation."""
        if self.per_org is None:
            return None
        bound = self._requests.get(org_id)
        if bound is None:
            bound = self._requests[org_id] = asyncio.Semaphore(self.per_org)
        return bound

    def slot(self, org_id: str | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one call's slot (of `org_id`'s bound too, when there is one)."""
        return self._calls.hold(org_id)

    def start(self, org_id: str | None = None) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold one item's place from its start to its end."""
        return self._starts.hold(org_id)


class ItemStopped(Exception):
    """`stop()` said True when the item's first call got its slot: it made no call."""


# The stop an item asks when its first call gets its slot (None once it has, or without one).
_BEFORE_FIRST_CALL: contextvars.ContextVar[Callable[[], bool] | None] = contextvars.ContextVar(
    "claresia_before_first_call", default=None
)


class _Bound:
    """At most `limit` holders, and `per_key` per key."""

    def __init__(self, limit: int, per_key: int | None) -> None:
        self._all = asyncio.Semaphore(limit)
        self._per_key = per_key
        self._keys: dict[str, asyncio.Semaphore] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str | None) -> AsyncIterator[None]:
        if self._per_key is None or key is None:
            async with self._all:
                yield
            return
        own = self._keys.get(key)
        if own is None:
            own = self._keys[key] = asyncio.Semaphore(self._per_key)
        async with own, self._all:
            yield


class Applier:
    """Runs plan items with at most `concurrency` target calls in flight (or within `bounds`,
    shared with other runs)."""

    def __init__(
        self, concurrency: int = DEFAULT_CONCURRENCY, *, bounds: CallBounds | None = None
    ) -> None:
        self.bounds = bounds if bounds is not None else CallBounds(concurrency)

    async def call(self, fn: Callable[[], Awaitable[T]], org_id: str | None = None) -> T:
        """Run one API call (or a short read sequence) of `org_id` inside the bounds."""
        async with self.bounds.slot(org_id):
            stop = _BEFORE_FIRST_CALL.get()
            if stop is not None:
                _BEFORE_FIRST_CALL.set(None)  # asked once: a started item finishes its calls
                if stop():
                    raise ItemStopped
            return await fn()

    async def apply(
        self, target: PublishTarget, item: PlanItem, *, stop: Callable[[], bool] | None = None
    ) -> ItemResult:
        """Run one item; never raises for an API or content problem (the result says it).
        `stop()` is asked when its first call gets its slot: True raises `ItemStopped`."""
        result = ItemResult(item, Outcome.UNCHANGED, item.live)
        token = _BEFORE_FIRST_CALL.set(stop)
        try:
            if item.op == Op.FAILED:
                result.outcome, result.error = Outcome.FAILED, item.reason
            elif item.op == Op.DELETE:
                await self._delete(target, item)
                result.outcome, result.live_at = Outcome.DELETED, _now()
            elif item.op == Op.UNCHANGED:
                result.live = _as_desired(item.live, item.desired)
            else:
                await self._publish(target, item, result)
                result.live_at = _now()
        except ItemStopped:
            raise
        except (TargetError, _Failed) as exc:
            result.outcome = Outcome.FAILED
            result.retryable = isinstance(exc, TargetError) and exc.retryable
            hint = f" — {exc.hint}" if isinstance(exc, TargetError) and exc.hint else ""
            result.error = f"{item.name}: {exc}{hint}"
        except Exception as exc:  # a bug must cost one skill, not the run
            log.exception("publishing %s in %s failed unexpectedly", item.name, item.org_id)
            result.outcome = Outcome.FAILED
            result.error = f"{item.name}: unexpected {type(exc).__name__}: {exc}"
        finally:
            _BEFORE_FIRST_CALL.reset(token)
        return result

    async def _delete(self, target: PublishTarget, item: PlanItem) -> None:
        remote_id = item.remote_id
        if remote_id is None:
            return
        with contextlib.suppress(SkillGone):  # already gone: the goal is reached
            await self.call(lambda: target.delete(remote_id), item.org_id)

    async def _publish(self, target: PublishTarget, item: PlanItem, result: ItemResult) -> None:
        desired = item.desired
        if desired is None or (desired.skill is None and not desired.disabled):
            raise _Failed(f"no transpiled skill for {item.name}")  # a disabled one needs none
        if item.op == Op.CREATE or item.live is None:
            changes = await self._create_or_adopt(target, desired, result)
        else:
            changes = item.changes
            result.outcome = Outcome.UPDATED if changes.new_version else Outcome.ACL
        for _attempt in range(2):
            try:
                await self._bring(target, desired, result, changes)
                return
            except SkillGone:
                if desired.disabled:  # gone: nothing left to take away, nor to create
                    result.outcome, result.live = Outcome.DELETED, None
                    return
                # Deleted behind our back between plan and now: create it again, once.
                changes = await self._create_or_adopt(target, desired, result)
        raise _Failed(f"{item.name} vanished twice while being published")

    async def _bring(
        self, target: PublishTarget, desired: DesiredSkill, result: ItemResult, changes: Changes
    ) -> None:
        """Upload a new version and/or set the access, as `changes` says."""
        skill = desired.skill
        assert result.live is not None
        remote_id, org = result.live.remote_id, result.item.org_id
        if changes.new_version:
            assert skill is not None
            after = await self.call(lambda: target.new_version(remote_id, skill), org)
            result.live = replace(
                result.live, version=after.version, content_hash=desired.content_hash
            )
        if changes.set_access:
            after = await self.call(lambda: target.set_access(remote_id, desired.access), org)
            result.live = replace(result.live, access=after.access)

    async def _create_or_adopt(
        self, target: PublishTarget, desired: DesiredSkill, result: ItemResult
    ) -> Changes:
        """Create the skill (or, if its name is taken, adopt ours); what it still needs."""
        skill, org = desired.skill, result.item.org_id
        assert skill is not None
        try:
            live = await self.call(lambda: target.create(skill), org)
        except NameTaken as exc:
            holder = exc.holder_id
            adopted = await self.call(lambda: target.adopt(desired.name, holder), org)
            if adopted is None:
                raise _Failed(
                    f"409 for {desired.name} but no skill of that name is listed; retry later"
                ) from None
            live = adopted
        result.live, result.outcome = live, Outcome.CREATED
        return changes_needed(live, desired)


def _as_desired(live: LiveSkill | None, desired: DesiredSkill | None) -> LiveSkill | None:
    """An unchanged skill is live as desired (its row takes the desired hash and access)."""
    if live is None or desired is None:
        return live
    # A disabled skill's content is not written (planner `_plan_disabled`): it stays the live one.
    content = live.content_hash if desired.disabled else desired.content_hash
    if live.content_hash == content and live.access == desired.access:
        return live  # as it nearly always is (one object less per skill of a no-op run)
    return replace(live, content_hash=content, access=desired.access)
