"""Contract tests: the real OrgClient against the emulator over loopback, for every call; its
configuration from the environment and its JSON decoding."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from claresia_sync.api import (
    APIConnectionError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    RequestTooLargeError,
    Skill,
    collect,
    make_http_pool,
)
from claresia_sync.api.client import DEFAULT_TIMEOUT_S, OrgClient, _decode
from claresia_sync.config import default_of
from claresia_sync.emulator import EmulatorServer
from tests.cli import clean_env
from tests.fixtures.daemon import free_port
from tests.fixtures.emulator import (
    ACME_KEY,
    ACME_ORG,
    DAINESE_ENGONLY_KEY,
    DAINESE_ORG,
    DAINESE_READONLY_KEY,
    admin_key,
    api_client,
    skill_payload,
)

pytestmark = pytest.mark.anyio

ME = "/v1/organizations/me"
SKILLS = "/v1/organizations/{org_id}/skills"


async def test_organization_workspaces_and_groups(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        org = await client.get_organization()
        workspaces = await collect(client.list_workspaces())
        groups = await collect(client.list_rbac_groups())
    assert (org.id, org.name, org.workspace_count, org.zero_data_retention) == (
        DAINESE_ORG,
        "Dainese S.p.A.",
        3,
        True,
    )
    assert {w.id: w.name for w in workspaces} == {
        "wrkspc_dainese_eng": "dainese-engineering",
        "wrkspc_dainese_corp": "dainese-corporate",
        "wrkspc_dainese_sales": "dainese-sales",
    }
    assert [g.id for g in groups] == sorted(
        [
            "rbac_group_dainese_engineers",
            "rbac_group_dainese_product",
            "rbac_group_dainese_ops",
            "rbac_group_dainese_sales",
        ]
    )
    acme, _ = api_client(emulator, ACME_KEY)
    async with acme:
        assert (await acme.get_organization()).name == "Acme Corp"


async def test_workspaces_paginate_past_1000(emulator: EmulatorServer) -> None:
    emulator.state.add_workspaces(
        DAINESE_ORG, [(f"wrkspc_bulk_{i:05d}", f"b{i}") for i in range(1234)]
    )
    client, _ = api_client(emulator)
    async with client:
        workspaces = await collect(client.list_workspaces(page_size=1000))
    ids = [w.id for w in workspaces]
    assert len(ids) == 1237 and len(set(ids)) == 1237
    assert ids == sorted(ids)
    assert emulator.stats.count("GET", "/v1/organizations/workspaces", 200) == 2


async def test_skills_paginate_past_1000_with_name_prefix(emulator: EmulatorServer) -> None:
    emulator.state.bulk_add_skills(DAINESE_ORG, [f"claresia-dainese-s{i:04d}" for i in range(1100)])
    emulator.state.bulk_add_skills(DAINESE_ORG, [f"other-s{i}" for i in range(5)])
    client, _ = api_client(emulator)
    async with client:
        everything = await collect(client.list_skills(DAINESE_ORG, page_size=1000))
        ours = await collect(client.list_skills(DAINESE_ORG, name_prefix="claresia-dainese-"))
    assert len(everything) == 1105
    assert len(ours) == 1100 and all(s.name.startswith("claresia-dainese-") for s in ours)
    assert [s.id for s in ours] == sorted(s.id for s in ours)
    assert all(s.id.startswith("skill_01") for s in ours)


async def test_skill_lifecycle(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        created = await client.create_skill(DAINESE_ORG, skill_payload())
        assert isinstance(created, Skill) and created.id.startswith("skill_01")
        assert created.name == "claresia-dainese-incident-postmortem"
        assert created.access.workspace_ids == [] and created.latest_version

        with pytest.raises(ConflictError) as conflict:
            await client.create_skill(DAINESE_ORG, skill_payload())
        assert conflict.value.existing_id == created.id
        assert conflict.value.status == 409 and conflict.value.type == "conflict_error"

        version = skill_payload(body="# v2\n\nBetter steps.\n")
        del version["name"]  # fixed at creation: a version upload may not carry it
        newer = await client.create_skill_version(DAINESE_ORG, created.id, version)
        assert newer.id == created.id
        assert int(newer.latest_version or 0) > int(created.latest_version or 0)
        assert newer.content_hash != created.content_hash

        acl = await client.set_skill_access(
            DAINESE_ORG, created.id, ["wrkspc_dainese_eng"], ["rbac_group_dainese_engineers"]
        )
        assert acl.access.workspace_ids == ["wrkspc_dainese_eng"]
        assert acl.access.rbac_group_ids == ["rbac_group_dainese_engineers"]

        fetched = await client.get_skill(DAINESE_ORG, created.id)
        assert fetched.latest_version == newer.latest_version
        assert fetched.access == acl.access
        listed = await collect(client.list_skills(DAINESE_ORG, name_prefix="claresia-dainese-"))
        assert [s.id for s in listed] == [created.id]

        deleted = await client.delete_skill(DAINESE_ORG, created.id)
        assert (deleted.type, deleted.id) == ("skill_deleted", created.id)
        with pytest.raises(NotFoundError):
            await client.delete_skill(DAINESE_ORG, created.id)
        with pytest.raises(NotFoundError):
            await client.get_skill(DAINESE_ORG, created.id)
        again = await client.create_skill(DAINESE_ORG, skill_payload())
        assert again.id != created.id  # the name is free again after a delete
    assert emulator.stats.count("POST", SKILLS, 201) == 2


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        (skill_payload("claresia-claude-helper"), "reserved word 'claude'"),
        (
            {
                **skill_payload(),
                "files": [
                    *skill_payload()["files"],
                    {"path": "claresia-dainese-incident-postmortem/../x", "content": "x"},
                ],
            },
            "..",
        ),
        ({**skill_payload(), "files": []}, "files"),
        (skill_payload(description="Has <b>tags</b>"), "XML"),
    ],
)
async def test_server_side_upload_validation(
    emulator: EmulatorServer, payload: dict[str, object], fragment: str
) -> None:
    client, sleeps = api_client(emulator)
    async with client:
        with pytest.raises(BadRequestError) as refused:
            await client.create_skill(DAINESE_ORG, payload)
    assert fragment in refused.value.message
    assert refused.value.status == 400 and refused.value.type == "invalid_request_error"
    assert sleeps == []  # a 400 is never retried
    assert emulator.stats.count("POST", SKILLS) == 1


async def test_upload_over_8_mib_is_413(emulator: EmulatorServer) -> None:
    big = skill_payload(extra_files={"references/big.md": "x" * (8 * 1024 * 1024 + 1)})
    client, _ = api_client(emulator)
    async with client:
        with pytest.raises(RequestTooLargeError) as refused:
            await client.create_skill(DAINESE_ORG, big)
    assert refused.value.status == 413 and refused.value.type == "request_too_large"


async def test_401_unknown_key_fails_at_once(emulator: EmulatorServer) -> None:
    client, sleeps = api_client(emulator, "sk-ant-admin01-nobody-0000000000000000000000000")
    async with client:
        with pytest.raises(AuthenticationError) as refused:
            await client.get_organization()
    err = refused.value
    assert (err.status, err.type) == (401, "authentication_error")
    assert err.request_id and err.request_id.startswith("req_")
    assert "trailing space" in err.hint
    assert sleeps == [] and emulator.stats.count(route=ME) == 1


async def test_403_names_missing_scope(emulator: EmulatorServer) -> None:
    client, sleeps = api_client(emulator, DAINESE_READONLY_KEY)
    async with client:
        assert (await client.get_organization()).id == DAINESE_ORG  # /me needs any scope
        with pytest.raises(PermissionDeniedError) as refused:
            await client.create_skill(DAINESE_ORG, skill_payload())
        with pytest.raises(PermissionDeniedError) as audit:
            await client.audit_events(DAINESE_ORG)
    assert refused.value.missing_scope == "skills:write"
    assert audit.value.missing_scope == "audit:read"
    assert "re-mint" in refused.value.hint and "skills:write" in refused.value.hint
    assert sleeps == []
    assert emulator.stats.writes() == 1 and emulator.stats.count(status=201) == 0


async def test_403_names_workspace_the_principal_lacks(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator, DAINESE_ENGONLY_KEY)
    async with client:
        skill = await client.create_skill(DAINESE_ORG, skill_payload())
        await client.set_skill_access(DAINESE_ORG, skill.id, ["wrkspc_dainese_eng"], [])
        with pytest.raises(PermissionDeniedError) as refused:
            await client.set_skill_access(
                DAINESE_ORG, skill.id, ["wrkspc_dainese_eng", "wrkspc_dainese_corp"], []
            )
        unchanged = await client.get_skill(DAINESE_ORG, skill.id)
    assert refused.value.workspace_id == "wrkspc_dainese_corp"
    assert "add the Admin key's principal to" in refused.value.hint
    assert unchanged.access.workspace_ids == ["wrkspc_dainese_eng"]


async def test_another_organisations_paths(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        with pytest.raises(PermissionDeniedError):
            await collect(client.list_skills(ACME_ORG))
        with pytest.raises(NotFoundError):
            await collect(client.list_skills("org_nowhere"))
        with pytest.raises(BadRequestError) as bad_acl:
            skill = await client.create_skill(DAINESE_ORG, skill_payload())
            await client.set_skill_access(DAINESE_ORG, skill.id, ["wrkspc_acme_default"], [])
    assert "wrkspc_acme_default" in bad_acl.value.message


async def test_bad_limit_is_400(emulator: EmulatorServer) -> None:
    client, _ = api_client(emulator)
    async with client:
        with pytest.raises(BadRequestError) as refused:
            await collect(client.list_workspaces(page_size=1001))
    assert "limit" in refused.value.message


async def test_shared_pool_between_tenants(emulator: EmulatorServer) -> None:
    pool = make_http_pool(max_connections=4)
    async with pool:
        for key in (admin_key(), admin_key(ACME_KEY, "env:CLARESIA_ACME_ADMIN_KEY")):
            async with OrgClient(emulator.base_url, key, http=pool) as client:
                await client.get_organization()
        assert not pool.is_closed  # a client never closes a pool it was given
        async with OrgClient(emulator.base_url, admin_key(ACME_KEY), http=pool) as acme:
            assert (await acme.get_organization()).id == ACME_ORG
    assert emulator.stats.count(route=ME, status=200) == 3


async def test_unreachable_api_error_names_the_base_url() -> None:
    """issue 13 item 12: a tenant file without base_url goes to the public API; the error must
    say which server could not be reached."""
    base = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    async with OrgClient(base, admin_key(), max_attempts=1, timeout=5.0) as client:
        with pytest.raises(APIConnectionError) as refused:
            await client.get_organization()
    assert base in str(refused.value)
    assert "check the base URL" in refused.value.hint


TIMEOUT_ENV = "CLARESIA_API_TIMEOUT_S"


async def test_the_api_timeout_is_handed_down(monkeypatch: pytest.MonkeyPatch) -> None:
    """The entry point reads CLARESIA_API_TIMEOUT_S (a bad value: tests/integration/
    test_config.py) and hands it down; the client never reads the environment."""
    monkeypatch.setenv(TIMEOUT_ENV, "2.5")
    async with OrgClient("http://127.0.0.1:9", admin_key()) as client:
        assert client._timeout.read == DEFAULT_TIMEOUT_S == default_of("api_timeout_s")
    async with OrgClient("http://127.0.0.1:9", admin_key(), timeout=2.5) as client:
        assert client._timeout.read == 2.5
    async with (
        make_http_pool(timeout=4.0) as http,
        OrgClient("http://127.0.0.1:9", admin_key(), http=http) as client,
    ):
        assert client._timeout.read == 4.0


def test_a_bad_api_timeout_does_not_break_the_import() -> None:
    imported = subprocess.run(
        [sys.executable, "-c", "import claresia_sync.api.client"],
        env={**clean_env(), TIMEOUT_ENV: "soon"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert imported.returncode == 0, imported.stderr


_json_value = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats()
    | st.text()
    | st.sampled_from(["lone \ud800", "\udc80"]),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


def _canonical(value: Any) -> str:
    """Text that tells 2**64 from 2.0**64 and compares NaN equal to NaN."""
    return json.dumps(value) if not isinstance(value, float) or not math.isnan(value) else "nan"


@settings(max_examples=300, deadline=None)
@given(_json_value, st.sampled_from([None, 0, 2]), st.booleans())
def test_decode_reads_what_the_stdlib_reads(value: Any, indent: int | None, ascii_: bool) -> None:
    """orjson where it agrees with the stdlib, the stdlib where it does not (integers beyond
    64 bits, NaN, lone surrogates): the same values either way."""
    body = json.dumps(value, indent=indent, ensure_ascii=ascii_).encode("utf-8", "surrogatepass")
    assert _canonical(_decode(body)) == _canonical(json.loads(body))
