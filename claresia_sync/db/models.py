"""The daemon's state and the Hub's telemetry tables, as SQLAlchemy 2 models.

The migrations in `migrations/versions/` create exactly this schema (a test compares them) plus
what models cannot say: the monthly partitions of `telemetry_event`, the publish-job NOTIFY
trigger, the analyst views and the `claresia_analyst` role.

Tables, in dependency order:
- `tenant`: a Claresia tenant or sub-tenant (`parent_id` set); the slug is part of published names.
- `org_connection`: the org-skills target of a root tenant (admin key by reference only).
- `tenant_target`: a real Anthropic target of a root tenant (claude-enterprise, claude-api).
- `zero_retention_attestation`: who confirmed a root tenant's zero retention, and when.
- `workspace_mapping`: Anthropic workspace (per org) -> tenant or sub-tenant.
- `archetype`: a role of a tenant, bound to one Anthropic RBAC group.
- `skill_grant`: archetype -> catalog skill (named `skill_grant`: `grant` is an SQL keyword).
- `catalog_skill`: the Skill IR catalog, shared by all tenants (IR as json with its hash).
- `catalog_ir`, `catalog_release`, `catalog_release_skill`: every IR ever imported (by skill
  and hash) and the immutable numbered releases made of them; `tenant.release` pins a tenant.
- `publication`: what is (to be) live where: one row per tenant, skill and target.
- `publish_job`: durable publish queue; `INSERT ... DEFAULT VALUES` enqueues "publish all".
- `skill_disabled`: a skill the kill switch took away (one tenant or all), by whom,
  when, why, until it is enabled again.
- `audit_checkpoint`: audit-log poll position per organisation.
- `telemetry_event_id` + `telemetry_event`: one row per audit event (docs/interfaces.md section 4).
- `telemetry_quarantine`: events that could not be attributed, kept with the reason.
- `publication_history`: every change of a `publication` row (append-only): what was live when.
- `rollout`, `rollout_wave`, `rollout_tenant`: a release moved to tenants in waves (rollout/).
- `center_action`: what was done through the Command Center, by whom, when (append-only).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    Date,
    DateTime,
    Double,
    ForeignKey,
    ForeignKeyConstraint,
    Identity,
    Index,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    SmallInteger,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSON, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Constraint names are fixed so that migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_N_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# A slug as docs/interfaces.md section 2 allows it in a published name, without the reserved words.
SLUG_CHECK = "{col} ~ '^[a-z0-9]+(-[a-z0-9]+)*$' AND {col} !~ '(anthropic|claude)'"
PUBLICATION_STATUSES = ("pending", "published", "failed", "unpublished")
# A target kind's name (`publish.targets.KINDS` says which exist: no migration per kind).
TARGET_KIND_CHECK = "kind ~ '^[a-z][a-z0-9]*(-[a-z0-9]+)*$'"
INSTALLATION_PREFERENCES = ("available", "auto_install", "required")
KEY_REF_CHECK = "{col} ~ '^(env:|file:)'"


class JobStatus(StrEnum):
    """A publish job's status (`publish_job.status`); the queue (`publish.jobs`) moves it:
    queued -> running -> succeeded | partial | failed | cancelled (and running -> queued when
    its replica died or lost the database)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    PARTIAL = "partial"  # some skills failed
    FAILED = "failed"  # nothing could be done
    CANCELLED = "cancelled"  # an operator cancelled it (a running job stops between items)


JOB_STATUSES = tuple(s.value for s in JobStatus)
EMPTY_ACL = '{"workspace_ids": [], "rbac_group_ids": []}'


def _now() -> Any:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), nullable=False)


def _updated() -> Any:
    return mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now(), nullable=False
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Tenant(Base):
    __tablename__ = "tenant"
    __table_args__ = (
        CheckConstraint(SLUG_CHECK.format(col="slug"), name="slug"),
        CheckConstraint("parent_id <> id", name="not_own_parent"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    slug: Mapped[str] = mapped_column(Text, unique=True)
    display_name: Mapped[str] = mapped_column(Text)
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    release: Mapped[int | None] = mapped_column(
        ForeignKey("catalog_release.number", ondelete="RESTRICT")
    )
    """The catalog release this tenant is on; NULL: the current one (`catalog_release`)."""
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _updated()

    parent: Mapped[Tenant | None] = relationship(remote_side=[id], back_populates="children")
    children: Mapped[list[Tenant]] = relationship(back_populates="parent")
    connection: Mapped[OrgConnection | None] = relationship(back_populates="tenant")
    workspaces: Mapped[list[WorkspaceMapping]] = relationship(back_populates="tenant")
    archetypes: Mapped[list[Archetype]] = relationship(back_populates="tenant")


class OrgConnection(Base):
    """One per root tenant; sub-tenants use their parent's. The key itself is never stored."""

    __tablename__ = "org_connection"
    __table_args__ = (
        # A pasted key instead of a reference must not reach the database.
        CheckConstraint("admin_key_ref ~ '^(env:|file:)'", name="key_is_reference"),
    )

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    org_id: Mapped[str] = mapped_column(Text, unique=True)
    admin_key_ref: Mapped[str] = mapped_column(Text)
    base_url: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _updated()

    tenant: Mapped[Tenant] = relationship(back_populates="connection")


class WorkspaceMapping(Base):
    __tablename__ = "workspace_mapping"
    __table_args__ = (UniqueConstraint("org_id", "workspace_id"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # The organisation of the tenant's targets (org-skills or not): no foreign key, since a
    # tenant on claude-api alone has no org_connection row.
    org_id: Mapped[str] = mapped_column(Text)
    workspace_id: Mapped[str] = mapped_column(Text)
    workspace_name: Mapped[str | None] = mapped_column(Text)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = _now()

    tenant: Mapped[Tenant] = relationship(back_populates="workspaces")


class Archetype(Base):
    __tablename__ = "archetype"
    __table_args__ = (
        UniqueConstraint("tenant_id", "slug"),
        CheckConstraint(SLUG_CHECK.format(col="slug"), name="slug"),
        CheckConstraint(
            f"installation_preference IN {INSTALLATION_PREFERENCES}", name="installation_preference"
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(Text)
    rbac_group_id: Mapped[str] = mapped_column(Text)
    # claude-enterprise: the setting of its group on each plugin granted to it.
    installation_preference: Mapped[str] = mapped_column(
        Text, server_default=text("'auto_install'")
    )
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _updated()

    tenant: Mapped[Tenant] = relationship(back_populates="archetypes")
    grants: Mapped[list[SkillGrant]] = relationship(
        back_populates="archetype", cascade="all, delete-orphan"
    )


class TenantTarget(Base):
    """A real Anthropic target of a root tenant (org-skills is `org_connection`); every key is
    a reference, never a key (docs/targets.md)."""

    __tablename__ = "tenant_target"
    __table_args__ = (
        UniqueConstraint("tenant_id", "kind"),
        CheckConstraint(TARGET_KIND_CHECK, name="kind_is_a_name"),
        CheckConstraint(
            "admin_key_ref IS NULL OR " + KEY_REF_CHECK.format(col="admin_key_ref"),
            name="key_is_reference",
        ),
        CheckConstraint(
            "NOT jsonb_path_exists(workspace_key_refs, "
            """'$.* ? (!(@ like_regex "^(env:|file:)"))')""",
            name="workspace_keys_are_references",
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(Text)
    org_id: Mapped[str] = mapped_column(Text)
    admin_key_ref: Mapped[str | None] = mapped_column(Text)
    """claude-enterprise: its Enterprise admin key; claude-api: an optional Console admin key."""
    base_url: Mapped[str | None] = mapped_column(Text)
    workspace_key_refs: Mapped[dict[str, str]] = mapped_column(
        JSONB, server_default=text("'{}'::jsonb")
    )
    """claude-api: workspace id -> reference of its API key."""
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _updated()


class ZeroRetentionAttestation(Base):
    """Who confirmed zero data retention for a root tenant's organisation, and when: no API
    reports it, so the real targets publish only with this (seeds/002's gate)."""

    __tablename__ = "zero_retention_attestation"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    attested_by: Mapped[str] = mapped_column(Text)
    attested_at: Mapped[dt.date] = mapped_column(Date)
    recorded_at: Mapped[dt.datetime] = _updated()


class CatalogSkill(Base):
    __tablename__ = "catalog_skill"
    __table_args__ = (
        CheckConstraint(SLUG_CHECK.format(col="skill_id"), name="skill_id"),
        CheckConstraint("ir_hash ~ '^sha256:[0-9a-f]{64}$'", name="ir_hash"),
    )

    skill_id: Mapped[str] = mapped_column(Text, primary_key=True)
    version: Mapped[str] = mapped_column(Text)
    title: Mapped[str] = mapped_column(Text)
    deprecated: Mapped[bool] = mapped_column(server_default=text("false"))
    # json, not jsonb: jsonb reorders object keys, and an example input's keys are rendered in
    # the order the author wrote them (the publish path must transpile what `transpile` does).
    ir: Mapped[dict[str, Any]] = mapped_column(JSON)
    ir_hash: Mapped[str] = mapped_column(Text)
    source_path: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _updated()


class CatalogIR(Base):
    """Every Skill IR ever imported, once per (skill, IR hash): releases share unchanged IR.
    Append-only (migration 0016)."""

    __tablename__ = "catalog_ir"

    skill_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ir_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    ir: Mapped[dict[str, Any]] = mapped_column(JSON)
    """json, not jsonb, as `catalog_skill.ir`: key order is part of the transpiled output."""
    created_at: Mapped[dt.datetime] = _now()


class CatalogRelease(Base):
    """A numbered, immutable snapshot of the catalog (release_store.py): only `is_current`
    ever changes (migration 0016's trigger), and one release at most is current."""

    __tablename__ = "catalog_release"
    __table_args__ = (
        CheckConstraint("number > 0", name="number"),
        Index(
            "uq_catalog_release_current",
            "is_current",
            unique=True,
            postgresql_where=text("is_current"),
        ),
    )

    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[dt.datetime] = _now()
    created_by: Mapped[str] = mapped_column(Text)
    note: Mapped[str | None] = mapped_column(Text)
    is_current: Mapped[bool] = mapped_column(server_default=text("false"))


class CatalogReleaseSkill(Base):
    """One skill of a release: which IR (append-only)."""

    __tablename__ = "catalog_release_skill"
    __table_args__ = (
        ForeignKeyConstraint(
            ["skill_id", "ir_hash"],
            ["catalog_ir.skill_id", "catalog_ir.ir_hash"],
            name="fk_catalog_release_skill_ir",
            ondelete="RESTRICT",
        ),
    )

    release: Mapped[int] = mapped_column(
        ForeignKey("catalog_release.number", ondelete="RESTRICT"), primary_key=True
    )
    skill_id: Mapped[str] = mapped_column(Text, primary_key=True)
    ir_hash: Mapped[str] = mapped_column(Text)
    deprecated: Mapped[bool] = mapped_column(server_default=text("false"))
    """`catalog_skill.deprecated` when the release was made."""


class SkillGrant(Base):
    """Archetype -> skill. A skill with grants cannot be deleted from the catalog (RESTRICT)."""

    __tablename__ = "skill_grant"

    archetype_id: Mapped[int] = mapped_column(
        ForeignKey("archetype.id", ondelete="CASCADE"), primary_key=True
    )
    skill_id: Mapped[str] = mapped_column(
        ForeignKey("catalog_skill.skill_id", ondelete="RESTRICT"), primary_key=True, index=True
    )
    created_at: Mapped[dt.datetime] = _now()

    archetype: Mapped[Archetype] = relationship(back_populates="grants")


class PublishJob(Base):
    """Durable publish queue. `tenant_id` NULL means every tenant; `lag_seconds` is request->done.

    An insert notifies channel `claresia_publish_job` with the job id (trigger in the migration).
    """

    __tablename__ = "publish_job"
    __table_args__ = (
        CheckConstraint(f"status IN {JOB_STATUSES!r}", name="status"),
        Index("ix_publish_job_queued", "requested_at", postgresql_where=text("status = 'queued'")),
        Index(
            "ix_publish_job_finished_at",
            "finished_at",
            postgresql_where=text("finished_at IS NOT NULL"),
        ),
        # One queued job per dedupe key (procrastinate's `queueing_lock`): `jobs.enqueue` with a
        # key returns the queued one instead of a second.
        Index(
            "ux_publish_job_dedupe_key",
            "dedupe_key",
            unique=True,
            postgresql_where=text("status = 'queued'"),
        ),
        # One unit per split job and root tenant (`jobs.split`).
        Index(
            "ux_publish_job_unit",
            "parent_id",
            "tenant_id",
            unique=True,
            postgresql_where=text("parent_id IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("publish_job.id", ondelete="CASCADE"))
    """A unit's split job: a job over every tenant runs as one unit per root tenant."""
    units: Mapped[int | None] = mapped_column(Integer)
    """How many units a split job has (NULL: not split). Its units are claimed, not it; the last
    one to finish ends it (`jobs.split`, `jobs.finish`)."""
    dedupe_key: Mapped[str | None] = mapped_column(Text)
    """While queued, no other queued job has this key (`jobs.scope_key`: drift checks, repairs)."""
    force: Mapped[bool] = mapped_column(server_default=text("false"))
    requested_by: Mapped[str] = mapped_column(Text, server_default=text("current_user"))
    requested_at: Mapped[dt.datetime] = _now()
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(Text, server_default=text("'queued'"))
    stats: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    errors: Mapped[list[Any]] = mapped_column(JSONB, server_default=text("'[]'::jsonb"))
    lag_seconds: Mapped[float | None] = mapped_column(
        Double, Computed("EXTRACT(EPOCH FROM finished_at - requested_at)", persisted=True)
    )
    claimed_by: Mapped[str | None] = mapped_column(Text)
    heartbeat_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_requested_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """Set by `jobs cancel` on a running job: it stops at the next item and ends `cancelled`."""
    retry_of: Mapped[int | None] = mapped_column(ForeignKey("publish_job.id", ondelete="SET NULL"))
    """The job this one re-runs (`jobs retry`)."""
    priority: Mapped[int] = mapped_column(SmallInteger, server_default=text("0"))
    """Higher runs first, and a running job of lower priority on the same tenants yields to it
    (`jobs.PRIORITY_KILL_SWITCH`)."""


class SkillDisabled(Base):
    """A skill the kill switch took away (publish/kill_switch.py): for one tenant and its
    sub-tenants, or every tenant (`tenant_id` NULL), by whom, when and why. Enabling it
    again sets `enabled_at`/`enabled_by`: the row stays, as the history."""

    __tablename__ = "skill_disabled"
    __table_args__ = (
        CheckConstraint("length(btrim(reason)) > 0", name="reason"),
        # One row in force per (skill, tenant or all).
        Index(
            "ux_skill_disabled_in_force",
            "skill_id",
            text("coalesce(tenant_id, 0)"),
            unique=True,
            postgresql_where=text("enabled_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    skill_id: Mapped[str] = mapped_column(ForeignKey("catalog_skill.skill_id", ondelete="RESTRICT"))
    tenant_id: Mapped[int | None] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    disabled_by: Mapped[str] = mapped_column(Text)
    disabled_at: Mapped[dt.datetime] = _now()
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    """The kill-switch job that took it away."""
    enabled_by: Mapped[str | None] = mapped_column(Text)
    enabled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))


class Publication(Base):
    """What is (to be) live in which organisation for one tenant, skill and target."""

    __tablename__ = "publication"
    __table_args__ = (
        UniqueConstraint("tenant_id", "skill_id", "target"),
        CheckConstraint(f"status IN {PUBLICATION_STATUSES!r}", name="status"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # RESTRICT: a tenant or skill whose skills may still be live cannot vanish unnoticed.
    tenant_id: Mapped[int] = mapped_column(ForeignKey("tenant.id", ondelete="RESTRICT"))
    skill_id: Mapped[str] = mapped_column(
        ForeignKey("catalog_skill.skill_id", ondelete="RESTRICT"), index=True
    )
    published_name: Mapped[str] = mapped_column(Text)
    # org-skills, claude-enterprise or claude-api:<workspace id> (TenantConnection.target_key).
    target: Mapped[str] = mapped_column(Text, server_default=text("'org-skills'"))
    remote_skill_id: Mapped[str | None] = mapped_column(Text)
    remote_version: Mapped[str | None] = mapped_column(Text)
    content_hash: Mapped[str | None] = mapped_column(Text)
    acl: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text(f"'{EMPTY_ACL}'::jsonb"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_job_id: Mapped[int | None] = mapped_column(
        ForeignKey("publish_job.id", ondelete="SET NULL")
    )
    published_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = _now()
    updated_at: Mapped[dt.datetime] = _updated()


PUBLICATION_ACTIONS = ("published", "updated", "access", "failed", "unpublished")


class PublicationHistory(Base):
    """Each change of a `publication` row, written in its transaction (publish/records.py):
    what was live for a tenant at any instant (docs/analytics.md). Append-only (0016)."""

    __tablename__ = "publication_history"
    __table_args__ = (
        CheckConstraint(f"action IN {PUBLICATION_ACTIONS!r}", name="action"),
        CheckConstraint(f"status IN {PUBLICATION_STATUSES!r}", name="status"),
        Index("ix_publication_history_tenant_at", "tenant_slug", "at"),
        # telemetry_by_release's lookup of the content live at an event (migration 0019)
        Index("ix_publication_history_tenant_skill_at", "tenant_slug", "skill_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.clock_timestamp()
    )
    tenant_id: Mapped[int] = mapped_column(BigInteger)
    """No foreign key: history outlives a removed tenant."""
    tenant_slug: Mapped[str] = mapped_column(Text)
    """As analysts name tenants (they do not read `tenant`)."""
    skill_id: Mapped[str] = mapped_column(Text)
    target: Mapped[str] = mapped_column(Text)
    published_name: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    """published (live from not live), updated (new content), access, failed, unpublished."""
    status: Mapped[str] = mapped_column(Text)
    """The row's status after the change (`publication.status`)."""
    content_hash: Mapped[str | None] = mapped_column(Text)
    """What is live after the change (null: nothing is)."""
    remote_version: Mapped[str | None] = mapped_column(Text)
    release: Mapped[int | None] = mapped_column(Integer)
    """The release whose content is live (null: none, or not known)."""
    job_id: Mapped[int | None] = mapped_column(BigInteger)


ROLLOUT_STATUSES = ("running", "halted", "completed", "rolled_back")
WAVE_STATUSES = ("pending", "publishing", "soaking", "passed")


class Rollout(Base):
    """One `rollout start`: release `release` moved to tenants wave by wave (rollout/)."""

    __tablename__ = "rollout"
    __table_args__ = (CheckConstraint(f"status IN {ROLLOUT_STATUSES!r}", name="status"),)

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    release: Mapped[int] = mapped_column(ForeignKey("catalog_release.number", ondelete="RESTRICT"))
    status: Mapped[str] = mapped_column(Text, server_default=text("'running'"))
    plan: Mapped[dict[str, Any]] = mapped_column(JSONB)
    """The validated plan (rollout/plan.py), as started."""
    plan_source: Mapped[str] = mapped_column(Text)
    """The plan file, or `default`."""
    created_by: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = _now()
    wave: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """The wave moving or soaking now."""
    halted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    halt_reason: Mapped[str | None] = mapped_column(Text)
    halt_readings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The guardrail readings that tripped (null: halted by hand or by a failed job)."""
    finished_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rolled_back_by: Mapped[str | None] = mapped_column(Text)


class RolloutWave(Base):
    __tablename__ = "rollout_wave"
    __table_args__ = (CheckConstraint(f"status IN {WAVE_STATUSES!r}", name="status"),)

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollout.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    name: Mapped[str] = mapped_column(Text)
    soak_s: Mapped[float] = mapped_column(Double)
    guardrails: Mapped[dict[str, Any]] = mapped_column(JSONB)
    status: Mapped[str] = mapped_column(Text, server_default=text("'pending'"))
    started_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """Its tenants pinned and their jobs queued."""
    live_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """Every job of it done: the soak starts."""
    passed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    passed_by: Mapped[str | None] = mapped_column(Text)
    """`guardrails`, or the operator who promoted past it."""
    readings: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The latest guardrail readings (rollout/guardrails.py)."""


class RolloutTenant(Base):
    __tablename__ = "rollout_tenant"

    rollout_id: Mapped[int] = mapped_column(
        ForeignKey("rollout.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_slug: Mapped[str] = mapped_column(Text)
    wave: Mapped[int] = mapped_column(Integer)
    previous_pin: Mapped[int | None] = mapped_column(Integer)
    """`tenant.release` before the rollout (null: it followed the current release)."""
    previous_release: Mapped[int] = mapped_column(Integer)
    """The release it was on before the rollout (what a rollback restores)."""
    moved_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    job_id: Mapped[int | None] = mapped_column(BigInteger)
    """Its publish job of the move (no foreign key: old jobs are pruned)."""
    rolled_back_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    rollback_job_id: Mapped[int | None] = mapped_column(BigInteger)


class AuditCheckpoint(Base):
    """Where the audit-log poll of one organisation stands (written with the rows it covers)."""

    __tablename__ = "audit_checkpoint"

    org_id: Mapped[str] = mapped_column(Text, primary_key=True)
    after_id: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = _updated()
    last_polled_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_poll_status: Mapped[str | None] = mapped_column(Text)
    last_poll_error: Mapped[str | None] = mapped_column(Text)
    last_poll_events: Mapped[int | None] = mapped_column(Integer)


class TelemetryEventId(Base):
    """The set of ingested event ids: makes `event_id` unique across all monthly partitions.

    `telemetry_event` is range-partitioned by `occurred_at`, and a partitioned table can only
    enforce keys that contain the partition column. This small table holds the global key; the
    composite foreign key from `telemetry_event` means each event id has exactly one row there.
    Retention: drop the month's partition, then delete its ids here.
    """

    __tablename__ = "telemetry_event_id"
    __table_args__ = (UniqueConstraint("event_id", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), index=True)


class TelemetryEvent(Base):
    """One row per audit event (docs/interfaces.md section 4), partitioned by month of
    `occurred_at`."""

    __tablename__ = "telemetry_event"
    __table_args__ = (
        PrimaryKeyConstraint("event_id", "occurred_at"),
        ForeignKeyConstraint(
            ["event_id", "occurred_at"],
            ["telemetry_event_id.event_id", "telemetry_event_id.occurred_at"],
            name="fk_telemetry_event_event_id",
        ),
        CheckConstraint("status IN ('succeeded', 'failed')", name="status"),
        Index("ix_telemetry_event_tenant_time", "tenant_slug", "occurred_at"),
        Index("ix_telemetry_event_skill_time", "skill_id", "occurred_at"),
        Index("ix_telemetry_event_record_id", "record_id"),
        {"postgresql_partition_by": "RANGE (occurred_at)"},
    )

    record_id: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str] = mapped_column(Text)
    event_type: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ingested_at: Mapped[dt.datetime] = _now()
    org_id: Mapped[str] = mapped_column(Text)
    workspace_id: Mapped[str | None] = mapped_column(Text)
    tenant_slug: Mapped[str] = mapped_column(Text)
    parent_tenant_slug: Mapped[str | None] = mapped_column(Text)
    skill_id: Mapped[str | None] = mapped_column(Text)
    skill_name: Mapped[str | None] = mapped_column(Text)
    remote_skill_id: Mapped[str | None] = mapped_column(Text)
    skill_version: Mapped[str | None] = mapped_column(Text)
    actor_user_id: Mapped[str | None] = mapped_column(Text)
    actor_email: Mapped[str | None] = mapped_column(Text)  # only when configured
    invocation_id: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(Text)
    input_tokens: Mapped[int | None] = mapped_column(Integer)
    output_tokens: Mapped[int | None] = mapped_column(Integer)
    cost_usd: Mapped[Decimal | None] = mapped_column(Numeric(14, 6))
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    error_type: Mapped[str | None] = mapped_column(Text)
    error_message: Mapped[str | None] = mapped_column(Text)
    footer_md: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)


class TelemetryQuarantine(Base):
    """An audit event that could not be attributed or parsed, kept with why."""

    __tablename__ = "telemetry_quarantine"
    __table_args__ = (
        # At-least-once delivery: the same bad event is quarantined once (NULL ids stay distinct).
        UniqueConstraint("org_id", "event_id"),
        Index("ix_telemetry_quarantine_received", "received_at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    received_at: Mapped[dt.datetime] = _now()
    org_id: Mapped[str | None] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text)
    raw: Mapped[Any] = mapped_column(JSONB)


class SkillUsageDaily(Base):
    """Claude Enterprise skills analytics (docs/interfaces.md section 6): one row per UTC day x
    skill, and per user or rbac group for the breakdowns asked for, upserted as Anthropic revises
    it.

    Money: the API gives `estimated_overage_spend` and `attributed_list_price` as decimal
    strings in cents; they are stored exactly (numeric, no rounding) in US dollars.

    Each field of the answer is stored once (migration 0013): `raw` keeps only what has no
    column, `row_hash` is a 64-bit digest, the key is the primary key."""

    __tablename__ = "skill_usage_daily"
    __table_args__ = (
        CheckConstraint("breakdown IN ('skill', 'user', 'rbac_group')", name="breakdown"),
        Index("ix_skill_usage_daily_tenant_day", "tenant_slug", "day"),
    )

    org_id: Mapped[str] = mapped_column(Text, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    breakdown: Mapped[str] = mapped_column(Text, primary_key=True)
    """`skill` (organisation-wide), `user` (group_by user_id) or `rbac_group`."""
    skill_name: Mapped[str] = mapped_column(Text, primary_key=True)
    """As reported (an opaque id for plugin skills); `published_name` is what it resolved to."""
    user_id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=text("''"))
    rbac_group_id: Mapped[str] = mapped_column(Text, primary_key=True, server_default=text("''"))
    published_name: Mapped[str | None] = mapped_column(Text)
    tenant_slug: Mapped[str | None] = mapped_column(Text)
    parent_tenant_slug: Mapped[str | None] = mapped_column(Text)
    skill_id: Mapped[str | None] = mapped_column(Text)
    archetype_slug: Mapped[str | None] = mapped_column(Text)
    invocation_count: Mapped[int | None] = mapped_column(Integer)
    distinct_user_count: Mapped[int | None] = mapped_column(Integer)
    chat_conversations: Mapped[int | None] = mapped_column(Integer)
    claude_code_sessions: Mapped[int | None] = mapped_column(Integer)
    cowork_sessions: Mapped[int | None] = mapped_column(Integer)
    estimated_overage_spend_usd: Mapped[Decimal | None] = mapped_column(Numeric)
    """Dollars, exact: the API's cents string divided by 100."""
    attributed_list_price_usd: Mapped[Decimal | None] = mapped_column(Numeric)
    """Dollars, exact: the API's cents string divided by 100."""
    currency: Mapped[str | None] = mapped_column(Text)
    raw: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """The fields of the answer that no column holds (null: none)."""
    row_hash: Mapped[int] = mapped_column(BigInteger)
    """First 8 bytes of sha256 of the whole answer (sorted keys), signed: revisions."""
    enable_count: Mapped[int | None] = mapped_column(Integer)
    share_status: Mapped[str | None] = mapped_column(Text)
    office_excel_sessions: Mapped[int | None] = mapped_column(Integer)
    office_outlook_sessions: Mapped[int | None] = mapped_column(Integer)
    office_powerpoint_sessions: Mapped[int | None] = mapped_column(Integer)
    office_word_sessions: Mapped[int | None] = mapped_column(Integer)
    first_seen_at: Mapped[dt.datetime] = _now()
    last_seen_at: Mapped[dt.datetime] = _now()
    last_changed_at: Mapped[dt.datetime] = _now()
    revision_count: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    """How often Anthropic's numbers for this row changed after it was first stored."""


class OrgActivity(Base):
    """Skill and plugin lifecycle events of the Compliance activity feed, once per activity id,
    append-only (docs/interfaces.md section 6)."""

    __tablename__ = "org_activity"
    __table_args__ = (Index("ix_org_activity_org_time", "org_id", "created_at"),)

    activity_id: Mapped[str] = mapped_column(Text, primary_key=True)
    org_id: Mapped[str] = mapped_column(Text)
    activity_type: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    ingested_at: Mapped[dt.datetime] = _now()
    actor_type: Mapped[str | None] = mapped_column(Text)
    actor_id: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[str | None] = mapped_column(Text)
    """The plugin or skill the activity is about."""
    subject_name: Mapped[str | None] = mapped_column(Text)
    tenant_slug: Mapped[str | None] = mapped_column(Text)
    skill_id: Mapped[str | None] = mapped_column(Text)
    repair_job_id: Mapped[int | None] = mapped_column(BigInteger)
    """The publish job queued because this activity changed one of ours behind our back."""
    raw: Mapped[dict[str, Any]] = mapped_column(JSONB)


class TelemetrySource(Base):
    """Where one telemetry source stands for one organisation (or tenant): its checkpoint,
    written in the transaction of the rows it covers, and its last run (status, /metrics)."""

    __tablename__ = "telemetry_source"

    source: Mapped[str] = mapped_column(Text, primary_key=True)
    """`skills-analytics`, `activity-feed` or `claude-code-otlp`."""
    org_id: Mapped[str] = mapped_column(Text, primary_key=True)
    cursor: Mapped[str | None] = mapped_column(Text)
    """activity-feed: the newest activity stored."""
    cursor_day: Mapped[dt.date | None] = mapped_column(Date)
    """skills-analytics: the newest day read in full."""
    backfill_cursor: Mapped[str | None] = mapped_column(Text)
    latest_available_day: Mapped[dt.date | None] = mapped_column(Date)
    last_run_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_success_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    last_rows: Mapped[int | None] = mapped_column(Integer)
    newest_data_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """The newest instant the stored data covers (lag = now - this)."""
    errors_total: Mapped[int] = mapped_column(Integer, server_default=text("0"))


class CenterAction(Base):
    """One request to act made through the Command Center (`claresia_sync/center/`): who (the
    token's name and role), when, what (action, target, parameters) and how it ended.
    Append-only: the database refuses UPDATE and DELETE (migration 0008)."""

    __tablename__ = "center_action"
    __table_args__ = (
        CheckConstraint("outcome IN ('ok', 'refused', 'error')", name="outcome"),
        Index("ix_center_action_at", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    at: Mapped[dt.datetime] = _now()
    actor: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text)
    target: Mapped[str | None] = mapped_column(Text)
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    outcome: Mapped[str] = mapped_column(Text)
    detail: Mapped[str | None] = mapped_column(Text)
    job_id: Mapped[int | None] = mapped_column(BigInteger)


class OtlpToken(Base):
    """The bearer token a root tenant's Claude Code (or its OpenTelemetry Collector) sends to
    the daemon's OTLP receiver: a reference (`env:` / `file:`), never the token."""

    __tablename__ = "otlp_token"
    __table_args__ = (CheckConstraint(KEY_REF_CHECK.format(col="token_ref"), name="is_reference"),)

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    token_ref: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = _updated()


class ClaudeCodeSettings(Base):
    """A root tenant's opt-in to have its rbac groups' Claude Code managed settings point at the
    OTLP receiver, and which of those settings claresia-sync wrote (names only, never a value:
    one of them holds the token), so that turning it off removes only ours."""

    __tablename__ = "claude_code_settings"

    tenant_id: Mapped[int] = mapped_column(
        ForeignKey("tenant.id", ondelete="CASCADE"), primary_key=True
    )
    manage: Mapped[bool] = mapped_column(server_default=text("false"))
    endpoint: Mapped[str | None] = mapped_column(Text)
    owned: Mapped[dict[str, Any]] = mapped_column(JSONB, server_default=text("'{}'::jsonb"))
    """rbac group id -> {"env": [the env names we wrote], "created": whether we made its
    document}."""
    updated_at: Mapped[dt.datetime] = _updated()


class ClaudeCodeActivation(Base):
    """What a stored Claude Code activation (a `telemetry_event` row) says beyond the row: its
    session and prompt, and the ids that join its user to the analytics rows (never an email)."""

    __tablename__ = "claude_code_activation"
    __table_args__ = (Index("ix_claude_code_activation_occurred_at", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_slug: Mapped[str] = mapped_column(Text)
    """The root tenant whose token exported it (the activation row names the sub-tenant)."""
    session_id: Mapped[str] = mapped_column(Text)
    prompt_id: Mapped[str] = mapped_column(Text)
    occurred_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    account_uuid: Mapped[str | None] = mapped_column(Text)
    account_id: Mapped[str | None] = mapped_column(Text)


class ClaudeCodePrompt(Base):
    """A Claude Code prompt's usage so far (its `api_request` records, from any export) and its
    first activation, which analysts see it on (telemetry/otlp_usage.py, migration 0014)."""

    __tablename__ = "claude_code_prompt"
    __table_args__ = (Index("ix_claude_code_prompt_first_event_id", "first_event_id"),)

    tenant_slug: Mapped[str] = mapped_column(Text, primary_key=True)
    """The root tenant whose token exported it."""
    session_id: Mapped[str] = mapped_column(Text, primary_key=True)
    prompt_id: Mapped[str] = mapped_column(Text, primary_key=True)
    first_event_id: Mapped[str | None] = mapped_column(Text)
    """The smallest event id of its stored activations (null: none yet)."""
    requests: Mapped[int] = mapped_column(Integer, server_default=text("0"))
    input_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    output_tokens: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    cost_usd: Mapped[Decimal] = mapped_column(Numeric, server_default=text("0"))
    duration_ms: Mapped[int] = mapped_column(BigInteger, server_default=text("0"))
    model: Mapped[str | None] = mapped_column(Text)
    """The model of its latest request (`model_at`)."""
    model_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    first_seen_at: Mapped[dt.datetime] = _now()
    request_keys: Mapped[list[int]] = mapped_column(
        ARRAY(BigInteger), server_default=text("'{}'::bigint[]")
    )
    """The `api_request` records counted into it (`otlp.request_key`): a retried export adds
    nothing. Emptied after the usage wait (`CLARESIA_OTLP_USAGE_WAIT_HOURS`, migration 0022)."""
    counted_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    """When a request was last counted into it (the wait runs from there)."""
