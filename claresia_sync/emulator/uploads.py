"""Multipart `files[]` uploads of the real API (Plugins API and Skills API), as the official SDK
sends them: one part per file, the part's filename being the file's path; or, for plugins, one
`.zip`/`.plugin` archive holding them all. Also the `.zip` of a stored version (downloads)."""

from __future__ import annotations

import io
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request

from claresia_sync.emulator.common import EmulatorError, bad_request

MAX_UPLOAD_BYTES = 30 * 1024 * 1024  # the real API's limit, all files together
_MAX_PARTS = 1000
_ZIP_TIME = (2026, 1, 1, 0, 0, 0)  # fixed, so one version always downloads as the same bytes


@dataclass(frozen=True)
class Upload:
    files: tuple[tuple[str, bytes], ...]  # (path, content), in upload order
    fields: dict[str, str]

    @property
    def size(self) -> int:
        return sum(len(c) for _, c in self.files)


async def read_upload(request: Request, *, archives: bool) -> Upload:
    """The `files[]` parts and plain fields of a multipart request; 400 naming what is wrong."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise bad_request("the request must be multipart/form-data with one files[] part per file")
    try:
        form = await request.form(max_files=_MAX_PARTS, max_fields=_MAX_PARTS)
    except Exception as exc:  # python-multipart's errors have no common public base
        raise bad_request(f"the multipart body cannot be read: {exc}") from None
    try:
        files: list[tuple[str, bytes]] = []
        fields: dict[str, str] = {}
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "files[]":
                    raise bad_request(f"a file part is named {name!r}: name each one 'files[]'")
                files.append((value.filename or "", await value.read()))
            else:
                fields[name] = value
    finally:
        await form.close()
    if not files:
        raise bad_request("files: no files[] part was uploaded")
    if archives and len(files) == 1 and files[0][0].endswith((".zip", ".plugin")):
        files = _unzip(files[0][0], files[0][1])
    upload = Upload(tuple(files), fields)
    if upload.size > MAX_UPLOAD_BYTES:
        raise EmulatorError(
            413,
            "request_too_large",
            f"the uploaded files hold {upload.size} bytes in all, at most {MAX_UPLOAD_BYTES}",
        )
    return upload


def _unzip(name: str, data: bytes) -> list[tuple[str, bytes]]:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            if sum(i.file_size for i in archive.infolist()) > MAX_UPLOAD_BYTES:
                raise EmulatorError(
                    413, "request_too_large", f"{name} unpacks to over {MAX_UPLOAD_BYTES} bytes"
                )
            return [(i.filename, archive.read(i)) for i in archive.infolist() if not i.is_dir()]
    except zipfile.BadZipFile:
        raise bad_request(f"files: {name} is not a zip archive") from None


def check_paths(files: Sequence[tuple[str, bytes]]) -> list[str]:
    """Problems with the paths of an upload: relative, '/'-separated, no '.'/'..', unique."""
    problems: list[str] = []
    seen: set[str] = set()
    for path, _ in files:
        parts = path.split("/")
        if not path or path.startswith("/") or "\\" in path or (len(path) > 1 and path[1] == ":"):
            problems.append(f"file {path!r}: the path must be relative and use '/'")
        elif any(p in ("", ".", "..") for p in parts):
            problems.append(f"file {path!r}: the path must not hold '..', '.' or empty segments")
        elif path in seen:
            problems.append(f"file {path!r}: uploaded twice")
        seen.add(path)
    return problems


def text(path: str, content: bytes) -> str:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        raise bad_request(f"file {path!r}: must be UTF-8 text") from None


def zip_bytes(files: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path, content in files:
            archive.writestr(zipfile.ZipInfo(path, date_time=_ZIP_TIME), content)
    return buffer.getvalue()
