"""The tenant configuration file (YAML), validated with pydantic; problems name file and path.

```yaml
version: 1
tenants:
  - slug: dainese                      # root tenant: owns the Anthropic organisation connection
    display_name: Dainese S.p.A.
    targets:                           # one section per target kind (docs/targets.md)
      org-skills: {org_id: org_dainese, admin_key: env:CLARESIA_DAINESE_ADMIN_KEY}
    workspaces: [{id: wrkspc_dainese_sales, name: dainese-sales}]
    archetypes:
      - {slug: account-exec, rbac_group: rbac_group_dainese_sales, grants: [meeting-summary]}
    sub_tenants:                       # use the parent's connection; one level deep
      - slug: dainese-eng
        workspaces: [{id: wrkspc_dainese_eng}]
        archetypes: [...]
  - slug: ferretti                     # the real targets (docs/targets.md)
    zero_retention: {attested_by: Anna Ferretti <anna@ferretti.example>, attested_at: 2026-11-20}
    otlp_token: env:CLARESIA_FERRETTI_OTLP_TOKEN   # Claude Code -> the daemon's OTLP receiver
    otlp:                              # opt-in: set Claude Code's OTLP settings per rbac group
      manage_claude_code_settings: true
      endpoint: https://claresia-sync.example.internal:4318   # the receiver, as Claude Code sees it
    targets:
      claude-enterprise: {org_id: org_ferretti, admin_key: env:CLARESIA_FERRETTI_ENTERPRISE_KEY}
      claude-api:
        org_id: org_ferretti
        workspace_keys: {wrkspc_ferretti_apps: env:CLARESIA_FERRETTI_APPS_API_KEY}
    workspaces: [{id: wrkspc_ferretti_apps}]
    archetypes:
      - {slug: engineer, rbac_group: rbac_group_ferretti_engineers, installation: required,
         grants: [code-review-checklist]}
```

Every key is a reference; which key family a reference must resolve to is the target's
(`claresia_sync.secrets.KeyFamily`), checked when the key is read. Each section under
`targets:` is its kind's (`TargetKind.section`, composed here from `targets.KINDS`). A root
tenant's `connection:` is the older spelling of the organisation connection's section
(`targets.org-skills`), read with the same meaning; a tenant giving both is refused.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, create_model

from claresia_sync import naming
from claresia_sync.errors import UserError
from claresia_sync.publish.targets import KINDS, TargetKind
from claresia_sync.publish.targets.section import (
    AnthropicId,
    BaseUrl,
    KeyRef,
    TargetSection,
)


class TenantConfigError(UserError):
    """Every problem of a tenant file; the CLI prints one per line before the summary."""

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__(f"{source}: {len(self.problems)} problem(s); nothing was applied")


def _slug(kind: str) -> Any:
    def check(value: str) -> str:
        try:
            naming.check_slug(kind, value)
        except naming.NamingError as exc:
            raise ValueError(str(exc)) from None
        return value

    return AfterValidator(check)


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


TenantSlug = Annotated[str, _slug("tenant")]
ArchetypeSlug = Annotated[str, _slug("archetype")]
SkillId = Annotated[str, _slug("skill_id")]


class WorkspaceSpec(_Spec):
    id: AnthropicId
    name: str | None = None


InstallationPreference = Literal["available", "auto_install", "required"]
"""How a claude-enterprise plugin reaches an archetype's rbac group (docs/real-api.md
section 1 A)."""


class ArchetypeSpec(_Spec):
    slug: ArchetypeSlug
    rbac_group: AnthropicId
    grants: list[SkillId]
    """Required: a forgotten `grants` key must not silently grant nothing (`[]` says so)."""
    installation: InstallationPreference = "auto_install"
    """claude-enterprise only: the installation preference of its group on each granted plugin."""


class TargetsSpec(_Spec):
    """A root tenant's `targets:`: one optional section per target kind that has one
    (`TargetKind.section`), keyed by the kind's name; the model the file is read with is composed
    from `targets.KINDS` (`tenants_file_model`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=False)

    def sections(self) -> list[tuple[str, TargetSection]]:
        """(kind, its section) of each target given, in the order of `targets.KINDS`."""
        found = [
            (f.alias or name, getattr(self, name)) for name, f in type(self).model_fields.items()
        ]
        return [(kind, section) for kind, section in found if section is not None]

    def section(self, kind: str) -> TargetSection | None:
        return dict(self.sections()).get(kind)


def organisation_connection() -> TargetKind | None:
    """The kind whose section a root tenant's `connection:` also spells (org-skills)."""
    return next((k for k in KINDS.values() if k.organisation_connection), None)


class ZeroRetentionSpec(_Spec):
    """Who confirmed zero data retention is on for the organisation, and when: no API reports
    it, so the real targets publish only with this attestation (seeds/002's gate)."""

    attested_by: Annotated[str, Field(min_length=3, max_length=200)]
    attested_at: dt.date


class OtlpSpec(_Spec):
    """Opt-in (claude-enterprise): claresia-sync writes the Claude Code environment that exports
    OTLP logs to its receiver into the managed settings of the tenant's archetypes' rbac groups
    (docs/claude-code.md); off again, it removes only what it wrote."""

    manage_claude_code_settings: bool = False
    endpoint: BaseUrl | None = None
    """The receiver's base URL as the members' Claude Code reaches it (`/v1/logs` is added)."""


class SubTenantSpec(_Spec):
    slug: TenantSlug
    display_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    workspaces: list[WorkspaceSpec] = []
    archetypes: list[ArchetypeSpec] = []

    @property
    def title(self) -> str:
        return self.display_name or self.slug


class TenantSpec(SubTenantSpec):
    connection: TargetSection | None = None
    """The older spelling of `targets.<the organisation connection's kind>` (org-skills); the
    model the file is read with types it as that kind's section."""
    targets: TargetsSpec | None = None
    zero_retention: ZeroRetentionSpec | None = None
    otlp_token: KeyRef | None = None
    """The bearer token its Claude Code sends to the daemon's OTLP receiver (a reference)."""
    otlp: OtlpSpec | None = None
    sub_tenants: list[SubTenantSpec] = []

    def org_ids(self) -> list[tuple[str, str]]:
        """(path under the tenant, org id) of every target, as `placed_sections`."""
        return [(f"{where}.org_id", section.org_id) for where, _, section in self.placed_sections()]

    def placed_sections(self) -> list[tuple[str, str, TargetSection]]:
        """(path under the tenant, kind, section) of each target: `connection:` (the
        organisation connection's older spelling) first, then `targets:` in the order of
        `targets.KINDS`."""
        out: list[tuple[str, str, TargetSection]] = []
        home = organisation_connection()
        if self.connection is not None and home is not None:
            out.append(("connection", home.name, self.connection))
        for kind, section in self.targets.sections() if self.targets else []:
            out.append((f"targets.{kind}", kind, section))
        return out

    def target_sections(self) -> list[tuple[str, TargetSection]]:
        """(kind, section) of each target, whichever spelling gave it."""
        return [(kind, section) for _, kind, section in self.placed_sections()]

    def section(self, kind: str) -> TargetSection | None:
        """The section of `kind` (None: the tenant has no such target)."""
        return dict(self.target_sections()).get(kind)

    @property
    def org_id(self) -> str:
        """The organisation of the tenant (every target names the same one: checked)."""
        found = self.org_ids()
        return found[0][1] if found else ""


class TenantsFile(_Spec):
    version: Literal[1] = 1
    tenants: list[TenantSpec]

    def entries(self) -> Iterable[tuple[str, SubTenantSpec, TenantSpec]]:
        """Every tenant with its path in the file and its root (itself for a root), roots first."""
        for i, root in enumerate(self.tenants):
            yield f"tenants[{i}]", root, root
            for j, sub in enumerate(root.sub_tenants):
                yield f"tenants[{i}].sub_tenants[{j}]", sub, root


def tenants_file_model() -> type[TenantsFile]:
    """`TenantsFile` with `targets:` (and `connection:`) composed from the kinds registered
    now."""
    home = organisation_connection()
    return _composed(
        tuple((name, kind.section) for name, kind in KINDS.items()),
        home.section if home is not None else None,
    )


@functools.cache
def _composed(
    sections: tuple[tuple[str, type[TargetSection]], ...],
    connection: type[TargetSection] | None,
) -> type[TenantsFile]:
    fields: dict[str, Any] = {
        name.replace("-", "_"): (section | None, Field(None, alias=name))
        for name, section in sections
    }
    targets = create_model("TargetsSpec", __base__=TargetsSpec, **fields)
    tenant_fields: dict[str, Any] = {"targets": (targets | None, None)}
    if connection is not None:
        tenant_fields["connection"] = (connection | None, None)
    tenant = create_model("TenantSpec", __base__=TenantSpec, **tenant_fields)
    return create_model("TenantsFile", __base__=TenantsFile, tenants=(list[tenant], ...))


def path_of(loc: Sequence[int | str]) -> str:
    """('tenants', 0, 'archetypes', 1) -> 'tenants[0].archetypes[1]'."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(file)"


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML keeps the last of duplicate keys silently; a config file must not."""


def _mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


def parse_tenants(text: str, source: str) -> TenantsFile:
    """Parse and validate a tenant file; `TenantConfigError` lists every problem."""
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1} column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise TenantConfigError(source, [f"{source}: {where}not valid YAML: {problem}"]) from None
    if not isinstance(data, dict):
        raise TenantConfigError(
            source, [f"{source}: expected a mapping with 'version: 1' and a 'tenants' list"]
        )
    try:
        config = tenants_file_model().model_validate(data)
    except ValidationError as exc:
        problems = [f"{source}: {path_of(e['loc'])}: {_reason(e)}" for e in exc.errors()]
        raise TenantConfigError(source, problems) from None
    problems = [f"{source}: {p}" for p in check_consistency(config)]
    if problems:
        raise TenantConfigError(source, problems)
    return config


def _reason(err: Any) -> str:
    kind, msg = err["type"], err["msg"]
    if kind == "extra_forbidden":
        return _unknown_key(err["loc"])
    if kind == "missing":
        if err["loc"][-1] == "grants":
            return "required key is missing (write `grants: []` to grant nothing)"
        return "required key is missing"
    return str(msg).removeprefix("Value error, ")


def _model_at(loc: Sequence[int | str]) -> type[BaseModel]:
    """The model of the mapping at `loc` (list indexes skipped, `X | None` and `list[X]` read
    through)."""
    model: type[BaseModel] = tenants_file_model()
    for part in loc:
        if isinstance(part, int):
            continue
        pending = [_fields(model)[part].annotation]
        while pending:
            tp = pending.pop()
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                model = tp
                break
            pending.extend(get_args(tp))
    return model


def _fields(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the name the file uses (the alias where there is one)."""
    return {f.alias or name: f for name, f in model.model_fields.items()}


def _unknown_key(loc: Sequence[int | str]) -> str:
    key, model = str(loc[-1]), _model_at(loc[:-1])
    allowed = list(_fields(model))
    if model is SubTenantSpec and key in TenantSpec.model_fields:
        why = {
            "connection": "a sub-tenant uses its root tenant's connection",
            "targets": "a sub-tenant uses its root tenant's targets",
            "zero_retention": "the root tenant attests it for the organisation",
            "otlp_token": "the root tenant's token covers its sub-tenants",
            "otlp": "the root tenant's opt-in covers its sub-tenants' rbac groups",
            "sub_tenants": "sub-tenants nest one level deep: list it in the root's sub_tenants",
        }[key]
        return f"not allowed in a sub-tenant: {why}"
    close = [a for a in allowed if a.startswith(key)] or difflib.get_close_matches(
        key, allowed, n=1, cutoff=0.6
    )
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return f"unknown key (allowed here: {', '.join(allowed)}){hint}"


def load_tenants(path: Path) -> TenantsFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read the tenant file {path}: {exc.strerror}") from None
    return parse_tenants(text, str(path))


def check_consistency(config: TenantsFile) -> list[str]:
    """What each entry can be right about alone but not together: duplicates and name clashes."""
    problems: list[str] = []
    tenant_at: dict[str, str] = {}
    org_at: dict[str, str] = {}
    workspace_at: dict[tuple[str, str], str] = {}
    names: dict[tuple[str, str], str] = {}
    for path, spec, root in config.entries():
        if spec.slug in tenant_at:
            problems.append(
                f"{path}.slug: tenant {spec.slug!r} is already at {tenant_at[spec.slug]}"
            )
        tenant_at.setdefault(spec.slug, path)
        org = root.org_id
        if spec is root:
            problems += _check_targets(path, root)
            where = root.org_ids()[0][0] if root.org_ids() else "targets"
            if org and org in org_at:
                problems.append(
                    f"{path}.{where}: organisation {org!r} is already connected at "
                    f"{org_at[org]}: one root tenant per organisation (use sub_tenants)"
                )
            org_at.setdefault(org, path)
        for w, ws in enumerate(spec.workspaces):
            here = f"{path}.workspaces[{w}]"
            if (org, ws.id) in workspace_at:
                problems.append(
                    f"{here}: workspace {ws.id!r} is already mapped at {workspace_at[(org, ws.id)]}"
                )
            workspace_at.setdefault((org, ws.id), here)
        archetype_at: dict[str, int] = {}
        for a, arch in enumerate(spec.archetypes):
            if arch.slug in archetype_at:
                problems.append(
                    f"{path}.archetypes[{a}].slug: archetype {arch.slug!r} is already at "
                    f"{path}.archetypes[{archetype_at[arch.slug]}]"
                )
            archetype_at.setdefault(arch.slug, a)
            for g, skill in enumerate(arch.grants):
                if arch.grants.index(skill) != g:
                    problems.append(
                        f"{path}.archetypes[{a}].grants[{g}]: {skill!r} is listed twice"
                    )
                    continue
                # `claresia-{tenant}-{skill}` can clash: dainese + eng-x vs dainese-eng + x.
                name = naming.published_name(spec.slug, skill)
                owner = names.setdefault((org, name), f"{spec.slug}/{skill}")
                if owner.split("/")[0] != spec.slug:
                    problems.append(
                        f"{path}.archetypes[{a}].grants[{g}]: published name {name!r} of "
                        f"{spec.slug}/{skill} clashes with {owner} in organisation {org!r}"
                    )
    return problems


def _check_targets(path: str, root: TenantSpec) -> list[str]:
    """A root tenant has at least one target, all in one organisation; each target's section
    checks itself against the workspaces mapped to the tenant or its sub-tenants."""
    orgs = root.org_ids()
    if not orgs:
        return [
            f"{path}: no target: give `targets:` ({', '.join(KINDS)}) with the organisation "
            "and key references"
        ]
    problems: list[str] = []
    given = [(where, kind) for where, kind, _ in root.placed_sections()]
    for where, kind in given:
        if where == "connection" and (f"targets.{kind}", kind) in given:
            problems.append(
                f"{path}: tenant {root.slug!r} gives its {kind} target twice, at "
                f"{path}.connection and {path}.targets.{kind}: keep one (`targets.{kind}` is "
                "the preferred spelling)"
            )
    problems += [
        f"{path}.{where}: organisation {org!r} differs from {orgs[0][1]!r} at {path}."
        f"{orgs[0][0]}: a root tenant's targets are in one organisation"
        for where, org in orgs[1:]
        if org != orgs[0][1]
    ]
    problems += _check_otlp(path, root)
    mapped = {
        ws.id: f"{path}{'' if spec is root else f'.sub_tenants[{j - 1}]'}.workspaces[{w}]"
        for j, spec in enumerate([root, *root.sub_tenants])
        for w, ws in enumerate(spec.workspaces)
    }
    for where, _, section in root.placed_sections():
        problems += section.problems(f"{path}.{where}", mapped)
    return problems


def _check_otlp(path: str, root: TenantSpec) -> list[str]:
    """The Claude Code opt-in needs the token it hands out, the receiver's address and the
    claude-enterprise target (the managed-settings API is Claude Enterprise's)."""
    otlp = root.otlp
    if otlp is None or not otlp.manage_claude_code_settings:
        return []
    here = f"{path}.otlp"
    problems = []
    if otlp.endpoint is None:
        problems.append(
            f"{here}.endpoint: required with manage_claude_code_settings: true: the receiver's "
            "base URL as Claude Code reaches it, e.g. https://claresia-sync.example.internal:4318"
        )
    elif otlp.endpoint.rstrip("/").endswith("/v1/logs"):
        problems.append(
            f"{here}.endpoint: give the receiver's base URL without /v1/logs (it is added)"
        )
    if root.otlp_token is None:
        problems.append(
            f"{here}.manage_claude_code_settings: needs `otlp_token: env:NAME` on the tenant "
            "(the token Claude Code sends to the receiver)"
        )
    carriers = [name for name, kind in KINDS.items() if kind.claude_code_settings]
    if not any(KINDS[kind].claude_code_settings for kind, _ in root.target_sections()):
        problems.append(
            f"{here}.manage_claude_code_settings: needs the {' or '.join(carriers)} target (the "
            "managed-settings API is Claude Enterprise's): add "
            + " or ".join(f"targets.{name}" for name in carriers)
        )
    return problems
