"""Tenant configuration: the YAML schema, declarative apply, and lookups for other parts."""

from claresia_sync.api.connect import TenantConnection
from claresia_sync.tenancy.apply import Change, apply_tenants
from claresia_sync.tenancy.lookup import (
    GrantedSkill,
    TenantSummary,
    UnknownTenantError,
    WorkspaceOwner,
    get_connection,
    granted_skills,
    list_tenants,
    org_connections,
    require_tenant,
    tenant_for_workspace,
    workspaces_and_groups,
)
from claresia_sync.tenancy.schema import TenantConfigError, TenantsFile, load_tenants, parse_tenants

__all__ = [
    "Change",
    "GrantedSkill",
    "TenantConfigError",
    "TenantConnection",
    "TenantSummary",
    "TenantsFile",
    "UnknownTenantError",
    "WorkspaceOwner",
    "apply_tenants",
    "get_connection",
    "granted_skills",
    "list_tenants",
    "load_tenants",
    "org_connections",
    "parse_tenants",
    "require_tenant",
    "tenant_for_workspace",
    "workspaces_and_groups",
]
