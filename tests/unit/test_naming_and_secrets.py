"""The published-name rule and admin keys by reference."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import pytest

from claresia_sync.naming import NamingError, published_name
from claresia_sync.secrets import AdminKey, KeyReferenceError, check_reference, resolve_key

CANARY = "sk-ant-admin01-CANARY-7f3a9c1e5b2d4f60a8c7e9b1d3f5a7c9e1b3d5f7a9c1e3b5"


def test_short_name_is_the_plain_namespace() -> None:
    assert (
        published_name("dainese", "incident-postmortem") == "claresia-dainese-incident-postmortem"
    )


def test_long_name_is_cut_to_55_chars_and_suffixed_with_the_hash_of_the_full_name() -> None:
    tenant, skill = "dainese-engineering-platform", "quarterly-business-review-deck-builder"
    full = f"claresia-{tenant}-{skill}"
    name = published_name(tenant, skill)
    assert len(full) > 64
    assert name == full[:55] + "-" + hashlib.sha256(full.encode()).hexdigest()[:8]
    assert len(name) == 64


def test_cut_ends_on_a_letter_or_digit() -> None:
    tenant = "t" * 45  # "claresia-" + tenant is 54 chars, so the 55th char is the hyphen
    full = f"claresia-{tenant}-{'s' * 40}"
    name = published_name(tenant, "s" * 40)
    assert full[54] == "-"
    assert name == full[:54] + "-" + hashlib.sha256(full.encode()).hexdigest()[:8]
    assert "--" not in name


@pytest.mark.parametrize(("tenant", "skill"), [("claude-fans", "x"), ("acme", "anthropic-news")])
def test_reserved_words_are_refused(tenant: str, skill: str) -> None:
    with pytest.raises(NamingError, match="reserved word"):
        published_name(tenant, skill)


@pytest.mark.parametrize("slug", ["Acme", "a--b", "-a", "a_b", ""])
def test_bad_slugs_are_refused(slug: str) -> None:
    with pytest.raises(NamingError, match="not a valid slug"):
        published_name(slug, "x")


def test_key_from_env_is_stripped_and_never_shown(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("TEST_ADMIN_KEY", f"  {CANARY}\n")
    with caplog.at_level(logging.DEBUG):
        key = resolve_key("env:TEST_ADMIN_KEY")
    assert key.reveal() == CANARY
    assert "whitespace" in caplog.text and CANARY[-4:] in caplog.text
    assert CANARY not in caplog.text
    for shown in (str(key), repr(key), f"{key}", f"{key!r}", repr([key])):
        assert CANARY not in shown and CANARY[:-4] not in shown


def test_key_file_with_final_newline_needs_no_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "key"
    path.write_text(CANARY + "\n")
    with caplog.at_level(logging.DEBUG):
        assert resolve_key(f"file:{path}").reveal() == CANARY
    assert "whitespace" not in caplog.text


def test_errors_never_echo_the_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOT_ADMIN", CANARY.replace("admin01", "api03"))
    with pytest.raises(KeyReferenceError) as info:
        resolve_key("env:NOT_ADMIN")
    assert "sk-ant-api03" not in str(info.value) and "admin key" in str(info.value)
    with pytest.raises(KeyReferenceError, match="by value") as info:
        check_reference(CANARY)
    assert CANARY not in str(info.value)
    with pytest.raises(KeyReferenceError, match="MISSING_VAR"):
        resolve_key("env:MISSING_VAR")
    with pytest.raises(KeyReferenceError, match="cannot read"):
        resolve_key(f"file:{tmp_path / 'absent'}")


def test_admin_key_repr_has_no_value_field() -> None:
    key = AdminKey(CANARY, "env:X")
    assert "_value" not in repr(key)
    assert key.last4 == CANARY[-4:]
