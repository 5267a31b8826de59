"""The formats the targets' ownership proofs rest on, pinned by literal values worked out by hand
from the written rules (docs/interfaces.md section 2, docs/targets.md), never by the code under
test: a change to any of them (dropping the length prefix of the content hash, the marker's
spacing, the shortening rule) fails here, because every other test computes the expected value
with the same function it checks.

How each literal was made (outside Python, from the rule alone):
    printf '13:demo/SKILL.md3:hi\\n24:demo/references/café.md6:naïve' | sha256sum
    printf '28:claresia-acme-hello/SKILL.md3:hi\\n' | sha256sum
    printf 'claresia-acme-europe-incident-postmortems-regulated-eu-vendor-summary' | sha256sum
"""

from __future__ import annotations

import json

from claresia_sync.naming import published_name
from claresia_sync.publish.targets import claude_api, claude_enterprise
from claresia_sync.transpile.transpiler import ClaudeSkill, SkillFile, bytes_hash, content_hash

# Rule (docs/interfaces.md section 2): the files sorted by path; for each, the decimal length in
# bytes of its UTF-8 path, ':', the path, the decimal length in bytes of its content, ':', the
# content; sha256 over all of it, written `sha256:` + 64 lowercase hex digits.
# 'demo/SKILL.md' (13 bytes) sorts before 'demo/references/café.md' (24 bytes: é is 2) because
# 'S' < 'r'; 'naïve' is 6 bytes.
TWO_FILES_HASH = "sha256:f26d0e6ef26046dc21f4c6439df66cba226e9d006c5744ac5505ad2397457aa7"
# The same files without the length prefixes hash to 9a12d321...: it must not be that.
UNPREFIXED_HASH = "sha256:9a12d321614fcb49c293f4c398bb78e0ce29c286452f11838100cfca494a67ae"
HELLO_HASH = "sha256:faa17782b66bb8dc389db170f6e3aa189e34c599b369a672ecc22076975f70fa"


def test_content_hash_is_the_written_rule() -> None:
    files = (
        SkillFile("demo/references/café.md", "naïve"),  # given unsorted: the rule sorts
        SkillFile("demo/SKILL.md", "hi\n"),
    )
    assert content_hash(files) == TWO_FILES_HASH
    assert content_hash(files) != UNPREFIXED_HASH


def test_bytes_hash_of_an_archive_is_the_same_rule() -> None:
    files = [("demo/SKILL.md", b"hi\n"), ("demo/references/café.md", "naïve".encode())]
    assert bytes_hash(files) == TWO_FILES_HASH
    assert bytes_hash([("claresia-acme-hello/SKILL.md", b"hi\n")]) == HELLO_HASH


def test_an_empty_file_still_counts() -> None:
    # printf '6:a/b.md0:' | sha256sum: an empty file is not the same skill as no file
    assert bytes_hash([("a/b.md", b"")]) == (
        "sha256:2e7174c0ee36471822484eef48eb915b8fa4c422a6de045b6b01f2e597370d2d"
    )


def _hello(description: str = "Says hello. Use when: greeting.") -> ClaudeSkill:
    return ClaudeSkill(
        name="claresia-acme-hello",
        display_title="Hello",
        description=description,
        files=(SkillFile("claresia-acme-hello/SKILL.md", "hi\n"),),
        metadata={
            "claresia.tenant": "acme",
            "claresia.skill_id": "hello",
            "claresia.skill_version": "1.2.0",
            "claresia.content_hash": HELLO_HASH,
        },
    )


# Rule (docs/targets.md, claude-enterprise): `[claresia-sync <tenant>/<skill> sha256:<hash>]`.
HELLO_MARKER = f"[claresia-sync acme/hello {HELLO_HASH}]"


def test_marker() -> None:
    assert claude_enterprise.marker(_hello()) == HELLO_MARKER


def test_plugin_manifest_bytes() -> None:
    """The manifest: name, display_name (the IR's title), the description ending with one space
    and the marker, version (the IR's); 2-space JSON, UTF-8; the bundle under skills/."""
    files = claude_enterprise.plugin_files(_hello())
    assert [(path, kind) for path, _, kind in files] == [
        (".claude-plugin/plugin.json", "application/json"),
        ("skills/claresia-acme-hello/SKILL.md", "text/markdown"),
    ]
    assert files[0][1].decode() == (
        "{\n"
        '  "name": "claresia-acme-hello",\n'
        '  "display_name": "Hello",\n'
        '  "description": "Says hello. Use when: greeting. [claresia-sync acme/hello '
        'sha256:faa17782b66bb8dc389db170f6e3aa189e34c599b369a672ecc22076975f70fa]",\n'
        '  "version": "1.2.0"\n'
        "}"
    )
    assert files[1][1] == b"hi\n"


def test_a_long_plugin_description_is_cut_so_the_marker_survives() -> None:
    """At most 500 chars: the marker (98 here) and its space are kept whole, the text is cut to
    500 - 98 - 1 - 1 = 400 chars and ends with '…'."""
    manifest = json.loads(claude_enterprise.plugin_files(_hello("x" * 600))[0][1])
    assert manifest["description"] == "x" * 400 + "… " + HELLO_MARKER
    assert len(manifest["description"]) == 500


def test_marker_is_read_back_from_a_description() -> None:
    found = claude_enterprise.MARKER.search("Anything at all. " + HELLO_MARKER)
    assert found is not None
    assert (found["tenant"], found["skill"], found["hash"]) == ("acme", "hello", HELLO_HASH)
    assert claude_enterprise.MARKER.search(HELLO_MARKER + " trailing") is None


def test_skills_api_display_name() -> None:
    """docs/targets.md, claude-api: the published name, one space, the marker."""
    expected = (
        "claresia-acme-hello [claresia-sync acme/hello "
        "sha256:faa17782b66bb8dc389db170f6e3aa189e34c599b369a672ecc22076975f70fa]"
    )
    assert claude_api.display_name(_hello()) == expected
    found = claude_api.DISPLAY.match(expected)
    assert found is not None
    assert (found["name"], found["tenant"], found["skill"], found["hash"]) == (
        "claresia-acme-hello",
        "acme",
        "hello",
        HELLO_HASH,
    )


def test_published_name() -> None:
    """docs/interfaces.md section 2: `claresia-{tenant}-{skill}`; over 64 chars, its first 55
    cut back to a letter or digit, '-', and the first 8 hex digits of sha256 of the full name."""
    assert published_name("dainese", "incident-postmortem") == (
        "claresia-dainese-incident-postmortem"
    )
    # exactly 64: kept
    assert published_name("acme-europe-north", "incident-postmortem-regulated-vendors") == (
        "claresia-acme-europe-north-incident-postmortem-regulated-vendors"
    )
    # 69 chars; its 55th is '-', so the cut keeps 54, then '-' and sha256(full)[:8]
    assert published_name("acme-europe", "incident-postmortems-regulated-eu-vendor-summary") == (
        "claresia-acme-europe-incident-postmortems-regulated-eu-ede0e6b8"
    )
