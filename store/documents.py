"""Where uploaded documents live. Content never enters Temporal history: the workflow keeps a ``DocumentRef``.

The store is content-addressed (the key is the content's sha256), so an identical file uploaded twice is stored
once, and it keeps a small index of which owners (filing entities) uploaded each content: the authenticity check
refuses a document that another entity has already submitted.

Methods are blocking (plain file I/O); async callers run them in a thread (``asyncio.to_thread``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from models.documents import DocumentRef

URI_SCHEME = "file-store://"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_TYPE = re.compile(r"^[a-z0-9][a-z0-9!#$&^_.+-]*/[a-z0-9][a-z0-9!#$&^_.+-]*$")
MAX_FILENAME_BYTES = 255


class DocumentNotFoundError(LookupError):
    """The reference names content the store does not have (never stored, or removed)."""


class DocumentStore(Protocol):
    """The port the API (uploads) and the document activities (verification) share."""

    def put(self, data: bytes, content_type: str, filename: str, owner: str) -> DocumentRef:
        """Store ``data`` for ``owner`` (the filing entity) and return its reference. Idempotent: storing the
        same bytes again returns an equal reference and records the owner once."""
        ...

    def get(self, ref: DocumentRef) -> bytes:
        """The stored bytes; raises :class:`DocumentNotFoundError` when there are none."""
        ...

    def exists(self, ref: DocumentRef) -> bool: ...

    def owners_of(self, sha256: str) -> set[str]:
        """Every owner that stored content with this sha256 (empty when nobody did)."""
        ...


def check_filename(filename: str) -> str:
    """``filename`` if it is a plain file name (or empty); raises ``ValueError`` for anything that could name
    another place: separators, ``.``/``..``, control characters, over-long names."""
    if filename == "":
        return filename
    problems = []
    if "/" in filename or "\\" in filename:
        problems.append("contains a path separator")
    if filename in {".", ".."}:
        problems.append("is a directory reference")
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in filename):
        problems.append("contains control characters")
    if len(filename.encode("utf-8")) > MAX_FILENAME_BYTES:
        problems.append(f"is longer than {MAX_FILENAME_BYTES} bytes")
    if problems:
        raise ValueError(f"filename {filename!r} refused: it {' and '.join(problems)}; send the file's base name only")
    return filename


def sha256_from_uri(uri: str) -> str:
    """The sha256 a ``file-store://`` URI names; raises ``ValueError`` for any other URI."""
    sha = uri.removeprefix(URI_SCHEME)
    if not uri.startswith(URI_SCHEME) or not _SHA256.match(sha):
        raise ValueError(f"not a document store URI: {uri!r} (expected {URI_SCHEME}<sha256>)")
    return sha


class LocalDocumentStore:
    """The store on a local filesystem::

        <root>/objects/<first two hex digits>/<sha256>          the content
        <root>/owners/<sha256>/<sha256 of the owner>            one marker per owner; its text is the owner

    Every file is written to a temporary name and renamed into place, so readers never see half a file and two
    processes storing the same content or owner at once both succeed.
    """

    def __init__(self, root: Path = Path(".data/documents")) -> None:
        self.root = root

    def put(self, data: bytes, content_type: str, filename: str, owner: str) -> DocumentRef:
        check_filename(filename)
        content_type = content_type.strip().lower()
        if not _CONTENT_TYPE.match(content_type):
            raise ValueError(f"content type {content_type!r} refused: expected a media type like image/jpeg")
        if not owner.strip():
            raise ValueError("owner is required: the filing entity the document belongs to")
        sha = hashlib.sha256(data).hexdigest()
        path = self._object_path(sha)
        if not path.exists():
            _write_atomically(path, data)
        marker = self.root / "owners" / sha / hashlib.sha256(owner.encode("utf-8")).hexdigest()
        if not marker.exists():
            _write_atomically(marker, owner.encode("utf-8"))
        return DocumentRef(
            uri=f"{URI_SCHEME}{sha}", sha256=sha, size=len(data), content_type=content_type, filename=filename
        )

    def get(self, ref: DocumentRef) -> bytes:
        try:
            return self._object_path(sha256_from_uri(ref.uri)).read_bytes()
        except FileNotFoundError:
            raise DocumentNotFoundError(f"no stored content for {ref.uri}") from None

    def exists(self, ref: DocumentRef) -> bool:
        try:
            return self._object_path(sha256_from_uri(ref.uri)).is_file()
        except ValueError:
            return False

    def owners_of(self, sha256: str) -> set[str]:
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        folder = self.root / "owners" / sha256
        if not folder.is_dir():
            return set()
        return {p.read_text(encoding="utf-8") for p in folder.iterdir() if not p.name.startswith(".")}

    def _object_path(self, sha256: str) -> Path:
        # Only a validated hex digest ever becomes part of a path: nothing a caller sends can leave the root.
        if not _SHA256.match(sha256):
            raise ValueError(f"not a sha256: {sha256!r}")
        return self.root / "objects" / sha256[:2] / sha256


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
