"""The local document store: content-addressed, atomic, owner index, no way out of its root."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from models.documents import DocumentRef
from store.documents import DocumentNotFoundError, LocalDocumentStore

BEIJING_ENTITY = "京ICP备12345678号"
JIANGSU_ENTITY = "苏ICP备87654321号"


@pytest.fixture
def store(tmp_path: Path) -> LocalDocumentStore:
    return LocalDocumentStore(tmp_path / "documents")


def test_put_then_get_returns_the_same_bytes_under_a_content_addressed_uri(store: LocalDocumentStore) -> None:
    data = b"\xff\xd8 a photo of an ID card " * 100
    ref = store.put(data, "image/jpeg", "id_card_front.jpg", owner=BEIJING_ENTITY)
    sha = hashlib.sha256(data).hexdigest()
    assert ref == DocumentRef(
        uri=f"file-store://{sha}", sha256=sha, size=len(data), content_type="image/jpeg", filename="id_card_front.jpg"
    )
    assert store.get(ref) == data
    assert store.exists(ref)


def test_the_same_content_is_stored_once_and_no_temporary_file_is_left(store: LocalDocumentStore) -> None:
    data = b"one licence photo" * 50
    first = store.put(data, "image/png", "licence.png", owner=BEIJING_ENTITY)
    again = store.put(data, "image/png", "licence.png", owner=BEIJING_ENTITY)
    assert first == again
    files = [p for p in store.root.rglob("*") if p.is_file()]
    assert len([p for p in files if p.parent.parent.name == "objects"]) == 1
    assert not [p for p in files if p.name.endswith(".part")]


def test_content_type_is_normalised_and_garbage_is_refused(store: LocalDocumentStore) -> None:
    assert store.put(b"x" * 10, " Image/JPEG ", "a.jpg", owner=BEIJING_ENTITY).content_type == "image/jpeg"
    with pytest.raises(ValueError, match="content type"):
        store.put(b"x" * 10, "a photo", "a.jpg", owner=BEIJING_ENTITY)


@pytest.mark.parametrize("filename", ["../../etc/passwd", "photos/id.jpg", "..", ".", "c:\\temp\\id.jpg", "id\x00.jpg"])
def test_filenames_that_name_a_path_are_refused(store: LocalDocumentStore, filename: str) -> None:
    with pytest.raises(ValueError, match="refused"):
        store.put(b"data", "image/jpeg", filename, owner=BEIJING_ENTITY)
    assert not store.root.exists() or not any(store.root.rglob("*"))


def test_a_plain_unicode_filename_is_kept(store: LocalDocumentStore) -> None:
    ref = store.put(b"data", "image/jpeg", "身份证 正面.jpg", owner=BEIJING_ENTITY)
    assert ref.filename == "身份证 正面.jpg"


def test_a_uri_that_is_not_a_sha256_cannot_reach_outside_the_store(store: LocalDocumentStore) -> None:
    ref = DocumentRef(uri="file-store://../../etc/passwd", sha256="0" * 64, size=1, content_type="image/jpeg")
    with pytest.raises(ValueError, match="not a document store URI"):
        store.get(ref)
    assert not store.exists(ref)


def test_getting_content_that_was_never_stored_raises_not_found(store: LocalDocumentStore) -> None:
    sha = hashlib.sha256(b"never uploaded").hexdigest()
    ref = DocumentRef(uri=f"file-store://{sha}", sha256=sha, size=14, content_type="image/jpeg")
    with pytest.raises(DocumentNotFoundError):
        store.get(ref)
    assert not store.exists(ref)


def test_owners_index_lists_every_entity_that_stored_the_same_content(store: LocalDocumentStore) -> None:
    data = b"the same licence photo" * 40
    ref = store.put(data, "image/jpeg", "a.jpg", owner=BEIJING_ENTITY)
    assert store.owners_of(ref.sha256) == {BEIJING_ENTITY}
    store.put(data, "image/jpeg", "b.jpg", owner=JIANGSU_ENTITY)
    store.put(data, "image/jpeg", "c.jpg", owner=JIANGSU_ENTITY)
    assert store.owners_of(ref.sha256) == {BEIJING_ENTITY, JIANGSU_ENTITY}
    assert store.owners_of(hashlib.sha256(b"nobody").hexdigest()) == set()


def test_owner_is_required_and_owners_of_wants_a_sha256(store: LocalDocumentStore) -> None:
    with pytest.raises(ValueError, match="owner is required"):
        store.put(b"data", "image/jpeg", "a.jpg", owner=" ")
    with pytest.raises(ValueError, match="not a sha256"):
        store.owners_of("../secrets")


def test_a_second_store_on_the_same_root_sees_the_content(store: LocalDocumentStore) -> None:
    ref = store.put(b"shared" * 10, "application/pdf", "letter.pdf", owner=BEIJING_ENTITY)
    other = LocalDocumentStore(store.root)
    assert other.get(ref) == b"shared" * 10
    assert other.owners_of(ref.sha256) == {BEIJING_ENTITY}
