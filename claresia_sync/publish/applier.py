"""The applier: run the items of a plan against the API, each on its own.

- Bounded concurrency: one semaphore around every API call, shared by all organisations.
- Isolation: an item's failure is caught and becomes its result; the others go on.
- Idempotence: a create answered 409 adopts the existing skill (found by `existing_id`, else by
  name) and brings it to the desired content and ACL, so a crash between create and record, or
  a retried POST, never makes a twin. A 404 on delete counts as done; a 404 on a new version or
  ACL (deleted behind our back) falls back to creating the skill.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from claresia_sync.api.client import OrgClient
from claresia_sync.api.errors import APIError, ConflictError, NotFoundError
from claresia_sync.api.models import Skill
from claresia_sync.publish.desired import Acl, DesiredSkill
from claresia_sync.publish.planner import Op, PlanItem, same_content
from claresia_sync.publish.records import PublicationState

T = TypeVar("T")
log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 16


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
    remote_id: str | None
    remote_version: str | None
    content_hash: str | None
    acl: Acl | None
    error: str | None = None
    live_at: dt.datetime | None = None
    """When the skill was live with its ACL (or gone, for a delete), if this run wrote."""
    adopted: bool = False

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
        return PublicationState(
            tenant_id=item.tenant_id,
            skill_id=item.skill_id,
            published_name=item.name,
            status=status,
            remote_skill_id=None if deleted else self.remote_id,
            remote_version=None if deleted else self.remote_version,
            content_hash=None if deleted else self.content_hash,
            acl=Acl() if deleted else (self.acl or Acl()),
            last_error=self.error,
            published_at=self.live_at if status == "published" else None,
        )


class _Failed(Exception):
    """An item failed for a reason that is not an API error (the message says why)."""


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Applier:
    """Runs plan items with at most `concurrency` API calls in flight."""

    def __init__(self, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._sem = asyncio.Semaphore(concurrency)

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Run one API call (or a short read sequence) inside the concurrency bound."""
        async with self._sem:
            return await fn()

    async def apply(self, client: OrgClient, item: PlanItem) -> ItemResult:
        """Run one item; never raises for an API or content problem (the result says it)."""
        result = ItemResult(
            item,
            Outcome.UNCHANGED,
            item.remote_id,
            item.live_version,
            item.live_hash,
            item.live_acl,
        )
        try:
            if item.op == Op.FAILED:
                result.outcome, result.error = Outcome.FAILED, item.reason
            elif item.op == Op.DELETE:
                await self._delete(client, item)
                result.outcome, result.live_at = Outcome.DELETED, _now()
            elif item.op == Op.UNCHANGED:
                if item.desired is not None:
                    result.content_hash = item.desired.content_hash
                    result.acl = item.desired.acl
            else:
                await self._publish(client, item, result)
                result.live_at = _now()
        except (APIError, _Failed) as exc:
            result.outcome = Outcome.FAILED
            hint = f" — {exc.hint}" if isinstance(exc, APIError) else ""
            result.error = f"{item.name}: {exc}{hint}"
        except Exception as exc:  # a bug must cost one skill, not the run
            log.exception("publishing %s in %s failed unexpectedly", item.name, item.org_id)
            result.outcome = Outcome.FAILED
            result.error = f"{item.name}: unexpected {type(exc).__name__}: {exc}"
        return result

    async def _delete(self, client: OrgClient, item: PlanItem) -> None:
        if item.remote_id is None:
            return
        with contextlib.suppress(NotFoundError):  # already gone: the goal is reached
            await self.call(lambda: client.delete_skill(item.org_id, item.remote_id or ""))

    async def _publish(self, client: OrgClient, item: PlanItem, result: ItemResult) -> None:
        desired = item.desired
        if desired is None or desired.skill is None:
            raise _Failed(f"no transpiled skill for {item.name}")
        new_version, set_acl = item.new_version, item.set_acl
        if item.op == Op.CREATE or result.remote_id is None:
            remote = await self._create_or_adopt(client, item.org_id, desired, result)
            new_version = not same_content(remote, desired)
            set_acl = _acl_of(remote) != desired.acl
            result.outcome = Outcome.CREATED
        elif new_version:
            result.outcome = Outcome.UPDATED
        else:
            result.outcome = Outcome.ACL
        for _attempt in range(2):
            try:
                if new_version:
                    await self._new_version(client, item.org_id, desired, result)
                    new_version = False
                if set_acl:
                    remote = await self.call(
                        lambda: client.set_skill_access(
                            item.org_id,
                            result.remote_id or "",
                            desired.acl.workspace_ids,
                            desired.acl.rbac_group_ids,
                        )
                    )
                    result.acl = _acl_of(remote)
                    set_acl = False
                return
            except NotFoundError:
                # Deleted behind our back between plan and now: create it again, once.
                remote = await self._create_or_adopt(client, item.org_id, desired, result)
                result.outcome = Outcome.CREATED
                new_version = not same_content(remote, desired)
                set_acl = _acl_of(remote) != desired.acl
        raise _Failed(f"{item.name} vanished twice while being published")

    async def _new_version(
        self, client: OrgClient, org_id: str, desired: DesiredSkill, result: ItemResult
    ) -> None:
        assert desired.skill is not None
        payload = desired.skill.payload()
        remote = await self.call(
            lambda: client.create_skill_version(org_id, result.remote_id or "", payload)
        )
        result.remote_version = remote.latest_version
        result.content_hash = desired.content_hash

    async def _create_or_adopt(
        self, client: OrgClient, org_id: str, desired: DesiredSkill, result: ItemResult
    ) -> Skill:
        """The skill of that name: created, or (409) the existing one."""
        assert desired.skill is not None
        payload = desired.skill.payload()
        try:
            remote = await self.call(lambda: client.create_skill(org_id, payload))
        except ConflictError as exc:
            remote = await self._adopt(client, org_id, desired.name, exc.existing_id)
            result.adopted = True
        result.remote_id = remote.id
        result.remote_version = remote.latest_version
        result.content_hash = remote.metadata.get("claresia.content_hash", remote.content_hash)
        result.acl = _acl_of(remote)
        return remote

    async def _adopt(
        self, client: OrgClient, org_id: str, name: str, existing_id: str | None
    ) -> Skill:
        if existing_id is not None:
            return await self.call(lambda: client.get_skill(org_id, existing_id))

        async def by_name() -> Skill | None:
            async for s in client.list_skills(org_id, name_prefix=name):
                if s.name == name:
                    return s
            return None

        found = await self.call(by_name)
        if found is None:
            raise _Failed(f"409 for {name} but no skill of that name is listed; retry later")
        return found


def _acl_of(remote: Skill) -> Acl:
    return Acl.of(remote.access.workspace_ids, remote.access.rbac_group_ids)
