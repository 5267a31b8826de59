"""The emulator's Skills API (`/v1/skills`, per workspace), driven by the official `anthropic` SDK
over loopback: create, list and page, versions, their archives, deletes, the name fixed at
creation, the upload limit, and which keys may call it."""

from __future__ import annotations

import anthropic
import httpx2
import pytest

from claresia_sync.emulator import EmulatorServer, SeedError, load_seed
from claresia_sync.emulator.uploads import MAX_UPLOAD_BYTES
from tests.fixtures.real_api import (
    ANY_KEY,
    APPS_KEY,
    DATA_KEY,
    ENTERPRISE_KEY,
    archive_files,
    client,
    skill_files,
)


def test_create_version_list_and_delete(emulator: EmulatorServer) -> None:
    skills = client(emulator, APPS_KEY).skills
    created = skills.create(files=skill_files(), display_name="PR Review")
    assert created.display_name == "PR Review" and created.source.type == "custom"
    first = skills.versions.retrieve("latest", skill_id=created.id)
    assert (first.name, first.description) == (
        "claresia-ferretti-pr-review",
        "Reviews a pull request.",
    )
    assert first.id == created.latest_version_id

    second = skills.versions.create(created.id, files=skill_files(body="Review it twice."))
    assert skills.retrieve(created.id).latest_version_id == second.id
    assert [v.id for v in skills.versions.list(created.id)] == [second.id, first.id]
    # Each version downloads as a zip of its files as uploaded (the beta SDK's download).
    sdk = client(emulator, APPS_KEY)
    as_uploaded = [(path, content) for path, content, _ in skill_files(body="Review it twice.")]
    assert archive_files(sdk, created.id, second.id) == as_uploaded
    assert archive_files(sdk, created.id, first.id) != as_uploaded
    with pytest.raises(anthropic.BadRequestError, match="'latest' is not accepted"):
        sdk.beta.skills.versions.download("latest", skill_id=created.id)
    with pytest.raises(anthropic.NotFoundError):  # another workspace's key
        client(emulator, DATA_KEY).beta.skills.versions.download(first.id, skill_id=created.id)
    # Without display_name it is the SKILL.md name.
    other = skills.create(files=skill_files("claresia-ferretti-triage"))
    assert other.display_name == "claresia-ferretti-triage"

    page = skills.list(limit=1, source="custom")
    assert [s.id for s in page.data] == [other.id] and page.next_page
    assert [s.id for s in skills.list(limit=1, source="custom")] == [other.id, created.id]
    assert skills.list(source="anthropic").data == []

    with pytest.raises(anthropic.BadRequestError, match="must stay the skill's name"):
        skills.versions.create(created.id, files=skill_files("claresia-ferretti-renamed"))
    assert skills.versions.delete(first.id, skill_id=created.id).type == "skill_version_deleted"
    with pytest.raises(anthropic.BadRequestError, match="only version"):
        skills.versions.delete(second.id, skill_id=created.id)
    assert skills.delete(created.id).type == "skill_deleted"
    with pytest.raises(anthropic.NotFoundError):
        skills.retrieve(created.id)


def test_a_skill_belongs_to_one_workspace(emulator: EmulatorServer) -> None:
    apps, data = client(emulator, APPS_KEY).skills, client(emulator, DATA_KEY).skills
    created = apps.create(files=skill_files())
    assert data.list().data == []
    with pytest.raises(anthropic.NotFoundError):
        data.retrieve(created.id)
    anywhere = client(emulator, ANY_KEY).skills
    assert [s.id for s in anywhere.list(workspace_id="wrkspc_ferretti_apps")] == [created.id]
    with pytest.raises(anthropic.BadRequestError, match="anthropic-workspace-id"):
        anywhere.list()
    with pytest.raises(anthropic.PermissionDeniedError, match="wrkspc_ferretti_apps"):
        apps.list(workspace_id="wrkspc_ferretti_data")


def test_keys_of_the_wrong_family_are_refused(emulator: EmulatorServer) -> None:
    with pytest.raises(anthropic.PermissionDeniedError, match="workspace's API key"):
        client(emulator, ENTERPRISE_KEY).skills.list()
    with pytest.raises(anthropic.PermissionDeniedError, match="Claude Enterprise admin key"):
        client(emulator, APPS_KEY).beta.organization.plugins.list()


def test_bad_uploads(emulator: EmulatorServer) -> None:
    skills = client(emulator, APPS_KEY).skills
    with pytest.raises(anthropic.BadRequestError, match="one top-level folder"):
        skills.create(files=[*skill_files(), ("other/SKILL.md", b"x", "text/markdown")])
    with pytest.raises(anthropic.BadRequestError, match="name"):  # frontmatter name != folder
        skills.create(files=skill_files(top="claresia-ferretti-elsewhere"))
    huge = ("claresia-ferretti-pr-review/assets/big.bin", b"\0" * (MAX_UPLOAD_BYTES + 1), "x")
    with pytest.raises(anthropic.ContentTooLargeError):
        skills.create(files=[*skill_files(), huge])
    assert skills.list().data == []


def skill_delete(emulator: EmulatorServer, mode: str, org: str = "org_ferretti") -> None:
    answer = httpx2.post(f"{emulator.base_url}/_emulator/orgs/{org}", json={"skill_delete": mode})
    assert answer.status_code == 200, answer.text


def test_a_skill_with_versions_deleted_directly_or_versions_first(
    emulator: EmulatorServer,
) -> None:
    """The docs do not settle it, so the emulator does both: `direct` (the SDK's types: a skill
    always holds a version) and `versions_first` (beta users' reports), switched per org."""
    skills = client(emulator, APPS_KEY).skills
    one = skills.create(files=skill_files())
    with pytest.raises(anthropic.BadRequestError, match="only version"):  # direct, the default
        skills.versions.delete(one.latest_version_id, skill_id=one.id)
    skills.delete(one.id)

    skill_delete(emulator, "versions_first")
    two = skills.create(files=skill_files())
    second = skills.versions.create(two.id, files=skill_files(body="Again."))
    with pytest.raises(anthropic.BadRequestError, match="Delete all versions first"):
        skills.delete(two.id)
    for version in (second.id, two.latest_version_id):
        skills.versions.delete(version, skill_id=two.id)  # the last one too
    skills.delete(two.id)
    assert list(skills.list()) == []

    refused = httpx2.post(
        f"{emulator.base_url}/_emulator/orgs/org_ferretti", json={"skill_delete": "cascade"}
    )
    assert refused.status_code == 400 and "direct|versions_first" in refused.text
    emulator.reset()  # back to the seed's
    three = skills.create(files=skill_files())
    skills.delete(three.id)


def test_the_seed_names_the_skill_delete_behaviour() -> None:
    seed = {
        "organizations": [
            {"id": "org_t", "name": "T", "skill_delete": "versions_first", "workspaces": []}
        ]
    }
    assert load_seed(seed).organizations[0].skill_delete == "versions_first"
    seed["organizations"][0]["skill_delete"] = "cascade"
    with pytest.raises(SeedError, match="skill_delete"):
        load_seed(seed)
