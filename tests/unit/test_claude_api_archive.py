"""The claude-api target's proof from a downloaded version archive: the content hash of a zip is
the transpiler's hash of the files uploaded, whether or not the zip keeps the top folder."""

from __future__ import annotations

import io
import zipfile

from claresia_sync.ir import load_skill_file
from claresia_sync.publish.targets.claude_api import archive_hash, skill_files
from claresia_sync.transpile import transpile
from tests.unit.test_transpile import CATALOG


def _zip(files: list[tuple[str, bytes]], folders: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        if folders:
            archive.writestr("claresia-acme-standup-notes/", b"")
        for path, content in files:
            archive.writestr(path, content)
    return buffer.getvalue()


def test_an_archive_of_the_upload_gives_the_transpiled_hash() -> None:
    skill = transpile(load_skill_file(CATALOG / "standup-notes.json").ir, "acme")
    uploaded = [(path, content) for path, content, _ in skill_files(skill)]
    assert archive_hash(_zip(uploaded, folders=True), skill.name) == skill.content_hash
    # The same files without their top folder: the skill's name is put back.
    bare = [(path.split("/", 1)[1], content) for path, content in uploaded]
    assert archive_hash(_zip(bare), skill.name) == skill.content_hash
    # One byte more anywhere: another hash.
    edited = [*uploaded[:-1], (uploaded[-1][0], uploaded[-1][1] + b" ")]
    assert archive_hash(_zip(edited), skill.name) != skill.content_hash


def test_what_is_not_a_zip_proves_nothing() -> None:
    assert archive_hash(b"<html>proxy error</html>", "claresia-acme-standup-notes") is None
