"""Required documents (DOMAIN.md's document matrix) and the authenticity checks, with real images made by Pillow,
the real local store and the face-vendor simulator over loopback."""

from __future__ import annotations

import io
import random
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image, ImageDraw
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.documents import (
    DocumentActivities,
    is_colour,
    required_documents,
)
from activities.face import FaceVendorRequestError, HttpFaceVerifier
from models.activity_io import VerificationResult, VerifyDocument
from models.documents import DocumentKind, DocumentRef
from models.order import (
    Change,
    ChangeField,
    Entity,
    FilingRecord,
    OrderKind,
    Person,
    PlaceOrder,
    Province,
    Service,
)
from models.settings import Settings
from simulators.face_vendor import FaceVendorSimulator
from store.documents import LocalDocumentStore

BEIJING_ENTITY = "京ICP备12345678号"
WEBSITE = "京ICP备12345678号-1"
APP = "京ICP备12345678号-2A"
JIANGSU_ENTITY = "苏ICP备87654321号"
PERSON_ID = "11010519491231002X"
REJECTED_ID = "110105194912310021"


# ---------------------------------------------------------------------------------------------- orders


def person(**overrides: Any) -> Person:
    fields: dict[str, Any] = {
        "name": "张三",
        "id_number": PERSON_ID,
        "mobile": "13800138000",
        "email": "zhang@example.cn",
    }
    return Person(**(fields | overrides))


def place(*changes: Change, province: Province = Province.BEIJING, kind: OrderKind = OrderKind.ENTITY) -> PlaceOrder:
    abbr = province.abbreviation
    entity_number = f"{abbr}ICP备12345678号"
    services = [
        Service(
            filing_number=f"{entity_number}-1",
            kind=OrderKind.WEBSITE,
            name="示例网站",
            domains=["example.cn"],
            person_in_charge=person(),
        ),
        Service(filing_number=f"{entity_number}-2A", kind=OrderKind.APP, name="示例应用", person_in_charge=person()),
    ]
    record = FilingRecord(
        entity_filing_number=entity_number,
        province=province,
        entity=Entity(name="示例科技有限公司", id_number="91350100M000100Y43", person_in_charge=person()),
        services=services,
    )
    filing_number = entity_number if kind is OrderKind.ENTITY else services[0].filing_number
    return PlaceOrder(order_id="order-1", kind=kind, filing_number=filing_number, record=record, changes=list(changes))


def keys(order: PlaceOrder) -> list[str]:
    return [r.key for r in required_documents(order)]


def test_entity_name_change_needs_the_business_licence_and_the_certificate_of_change_r_ent_1() -> None:
    order = place(Change(field=ChangeField.ENTITY_NAME, new_value="新示例科技有限公司"))
    assert keys(order) == ["business_licence:entity", "change_certificate:entity"]


def test_credit_code_change_needs_the_same_documents_as_a_name_change() -> None:
    order = place(Change(field=ChangeField.ENTITY_CREDIT_CODE, new_value="91350100M000100Y43"))
    assert keys(order) == ["business_licence:entity", "change_certificate:entity"]


def test_entity_person_change_needs_id_card_and_an_authorisation_letter_when_not_the_legal_representative() -> None:
    order = place(Change(field=ChangeField.ENTITY_PERSON_IN_CHARGE, new_person=person(name="李四")))
    assert keys(order) == ["id_card_front:entity", "id_card_back:entity", "authorisation_letter:entity"]


def test_entity_person_change_to_the_legal_representative_needs_no_authorisation_letter() -> None:
    new = person(name="李四", is_legal_representative=True)
    order = place(Change(field=ChangeField.ENTITY_PERSON_IN_CHARGE, new_person=new))
    assert keys(order) == ["id_card_front:entity", "id_card_back:entity"]


def test_entity_person_change_without_the_new_person_asks_for_the_letter_to_be_safe() -> None:
    order = place(Change(field=ChangeField.ENTITY_PERSON_IN_CHARGE))
    assert "authorisation_letter:entity" in keys(order)


@pytest.mark.parametrize("service", [WEBSITE, APP])
def test_service_person_change_needs_id_card_and_face_verification_for_that_service(service: str) -> None:
    order = place(
        Change(field=ChangeField.SERVICE_PERSON_IN_CHARGE, service=service, new_person=person()),
        kind=OrderKind.WEBSITE,
    )
    assert keys(order) == [f"id_card_front:{service}", f"id_card_back:{service}", f"face_verification:{service}"]
    assert all(r.subject == service for r in required_documents(order))


def test_id_card_renewal_needs_new_id_card_photos_of_the_person_concerned() -> None:
    assert keys(place(Change(field=ChangeField.ID_CARD_RENEWAL))) == ["id_card_front:entity", "id_card_back:entity"]
    renewal = place(Change(field=ChangeField.ID_CARD_RENEWAL, service=WEBSITE), kind=OrderKind.WEBSITE)
    assert keys(renewal) == [f"id_card_front:{WEBSITE}", f"id_card_back:{WEBSITE}"]


@pytest.mark.parametrize(
    "field",
    [
        ChangeField.CONTACT_MOBILE,
        ChangeField.CONTACT_EMAIL,
        ChangeField.SERVICE_NAME,
        ChangeField.SERVICE_IP,
        ChangeField.SERVICE_CONTENT_CATEGORY,
        ChangeField.SERVICE_LANGUAGE,
        ChangeField.DOMAIN_DELETE,
        ChangeField.ENTITY_ADDRESS,
    ],
)
def test_contact_name_and_ip_changes_need_no_identity_re_verification(field: ChangeField) -> None:
    assert required_documents(place(Change(field=field, service=WEBSITE, new_value="x"))) == []


def test_jiangsu_orders_always_need_an_authenticity_commitment_from_the_province_table() -> None:
    order = place(Change(field=ChangeField.CONTACT_MOBILE, new_value="13900139000"), province=Province.JIANGSU)
    legal = order.record.entity.person_in_charge.model_copy(update={"is_legal_representative": True})
    entity = order.record.entity.model_copy(update={"person_in_charge": legal})
    order = order.model_copy(update={"record": order.record.model_copy(update={"entity": entity})})
    requirements = required_documents(order)
    assert [r.key for r in requirements] == ["authenticity_commitment:entity"]
    assert "Jiangsu" in requirements[0].description


def test_jiangsu_asks_an_authorisation_letter_when_the_person_in_charge_is_not_the_legal_representative() -> None:
    order = place(Change(field=ChangeField.CONTACT_MOBILE, new_value="13900139000"), province=Province.JIANGSU)
    assert not order.record.entity.person_in_charge.is_legal_representative
    keys = [r.key for r in required_documents(order)]
    assert sorted(keys) == ["authenticity_commitment:entity", "authorisation_letter:entity"]
    beijing = place(Change(field=ChangeField.CONTACT_MOBILE, new_value="13900139000"), province=Province.BEIJING)
    assert required_documents(beijing) == []


def test_requirements_have_no_duplicates_and_do_not_depend_on_the_order_of_changes() -> None:
    changes = [
        Change(field=ChangeField.SERVICE_PERSON_IN_CHARGE, service=APP, new_person=person()),
        Change(field=ChangeField.ID_CARD_RENEWAL),
        Change(field=ChangeField.ENTITY_NAME, new_value="新名称"),
        Change(field=ChangeField.ENTITY_PERSON_IN_CHARGE, new_person=person(name="李四")),
        Change(field=ChangeField.SERVICE_PERSON_IN_CHARGE, service=WEBSITE, new_person=person()),
    ]
    forward = required_documents(place(*changes))
    backward = required_documents(place(*reversed(changes)))
    assert forward == backward
    assert [r.key for r in forward] == [
        "business_licence:entity",
        "change_certificate:entity",
        "id_card_front:entity",
        "id_card_back:entity",
        "authorisation_letter:entity",
        f"id_card_front:{WEBSITE}",
        f"id_card_back:{WEBSITE}",
        f"face_verification:{WEBSITE}",
        f"id_card_front:{APP}",
        f"id_card_back:{APP}",
        f"face_verification:{APP}",
    ]
    assert all(r.description for r in forward)


async def test_required_documents_activity_wraps_the_matrix(tmp_path: Path) -> None:
    acts = DocumentActivities(LocalDocumentStore(tmp_path), HttpFaceVerifier("http://127.0.0.1:1"), Settings())
    order = place(Change(field=ChangeField.ENTITY_NAME, new_value="新名称"))
    result = await ActivityEnvironment().run(acts.required_documents, order)
    assert result.requirements == required_documents(order)
    assert [a.__temporal_activity_definition.name for a in acts.activities()] == [
        "required_documents",
        "verify_document",
    ]


# ---------------------------------------------------------------------------------------------- images


def photo(width: int = 900, height: int = 600, *, seed: int = 1) -> Image.Image:
    """Something like a photo of an ID card: a pale blue card on a desk, a portrait, a red seal, sensor noise."""
    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), (150, 120, 90))
    draw = ImageDraw.Draw(img)
    draw.rounded_rectangle((width // 12, height // 10, width * 11 // 12, height * 9 // 10), 20, fill=(205, 225, 240))
    draw.rectangle((width * 2 // 3, height // 4, width * 5 // 6, height * 2 // 3), fill=(230, 190, 160))
    draw.ellipse(
        (width // 6, height // 2, width // 6 + height // 4, height // 2 + height // 4), outline=(200, 30, 30), width=8
    )
    for y in range(height // 4, height // 2, 30):
        draw.line((width // 6, y, width // 2, y), fill=(40, 40, 40), width=6)
    noise = Image.frombytes("RGB", (width, height), rng.randbytes(width * height * 3))
    return Image.blend(img, noise, 0.12)


def encode(img: Image.Image, fmt: str = "JPEG", **params: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **params)
    return buf.getvalue()


def photocopy(img: Image.Image) -> Image.Image:
    """A greyscale copy as a phone photographs it: three channels, all (nearly) equal."""
    return img.convert("L").convert("RGB")


def sepia(img: Image.Image) -> Image.Image:
    """A greyscale copy photographed under warm light: every pixel tinted the same way."""
    grey = img.convert("L")
    return Image.merge("RGB", [grey.point(lambda v, k=k: int(v * k)) for k in (1.0, 0.86, 0.68)])


@pytest.fixture(scope="module")
async def face_vendor() -> AsyncIterator[FaceVendorSimulator]:
    sim = FaceVendorSimulator(reject_id_numbers={REJECTED_ID})
    await sim.start()
    yield sim
    await sim.stop()


@pytest.fixture
def store(tmp_path: Path) -> LocalDocumentStore:
    return LocalDocumentStore(tmp_path / "documents")


@pytest.fixture
def activities(store: LocalDocumentStore, face_vendor: FaceVendorSimulator, tmp_path: Path) -> DocumentActivities:
    return DocumentActivities(
        store, HttpFaceVerifier(face_vendor.url, timeout=5), Settings(document_store_path=tmp_path / "documents")
    )


async def verify(
    activities: DocumentActivities,
    ref: DocumentRef,
    kind: DocumentKind = DocumentKind.ID_CARD_FRONT,
    *,
    owner: str = BEIJING_ENTITY,
    who: Person | None = None,
) -> VerificationResult:
    req = VerifyDocument(order_id="order-1", key=f"{kind.value}:entity", kind=kind, ref=ref, owner=owner, person=who)
    return await ActivityEnvironment().run(activities.verify_document, req)


def upload(
    store: LocalDocumentStore, data: bytes, content_type: str = "image/jpeg", owner: str = BEIJING_ENTITY
) -> DocumentRef:
    return store.put(data, content_type, "upload", owner=owner)


async def test_a_colour_photo_of_an_original_passes_every_check(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    result = await verify(activities, upload(store, encode(photo(), quality=90)))
    assert result.passed, result.reason
    assert result.checks == ["integrity", "duplicate", "content_type", "size", "readable", "resolution", "colour"]
    assert result.key == "id_card_front:entity"


async def test_a_png_photo_in_portrait_orientation_passes(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    result = await verify(activities, upload(store, encode(photo(600, 900), "PNG"), "image/png"))
    assert result.passed, result.reason


@pytest.mark.parametrize("copy", [photocopy, sepia, lambda img: img.convert("L")], ids=["grey-rgb", "tinted", "mode-L"])
async def test_a_greyscale_photocopy_is_refused_photos_must_be_colour_originals(
    activities: DocumentActivities, store: LocalDocumentStore, copy: Any
) -> None:
    result = await verify(activities, upload(store, encode(copy(photo()), quality=90)))
    assert not result.passed
    assert result.checks == ["colour"]
    assert "colour photo of the original" in result.reason


async def test_a_photo_below_the_minimum_resolution_is_refused(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    result = await verify(activities, upload(store, encode(photo(300, 200), "PNG"), "image/png"))
    assert (result.passed, result.checks) == (False, ["resolution"])
    assert "300×200" in result.reason and "600×400" in result.reason


async def test_a_file_too_small_to_be_a_clear_photo_is_refused(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    tiny = encode(Image.new("RGB", (640, 480), (200, 30, 30)), quality=50)
    assert len(tiny) < 10 * 1024
    result = await verify(activities, upload(store, tiny))
    assert (result.passed, result.checks) == (False, ["size"])
    assert "too small" in result.reason


async def test_a_file_over_five_mib_is_refused(activities: DocumentActivities, store: LocalDocumentStore) -> None:
    side = 1400
    noise = Image.frombytes("RGB", (side, side), random.Random(2).randbytes(side * side * 3))
    huge = encode(noise, "PNG", compress_level=1)
    assert len(huge) > 5 * 1024 * 1024
    result = await verify(activities, upload(store, huge, "image/png"))
    assert (result.passed, result.checks) == (False, ["size"])
    assert "limit is 5.0 MiB" in result.reason


async def test_a_file_that_is_not_an_image_is_refused(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    result = await verify(activities, upload(store, b"this is a text file, not a photo\n" * 600))
    assert (result.passed, result.checks) == (False, ["readable"])
    assert "could not be opened as an image" in result.reason


async def test_a_truncated_jpeg_is_refused(activities: DocumentActivities, store: LocalDocumentStore) -> None:
    data = encode(photo(), quality=90)
    result = await verify(activities, upload(store, data[: len(data) // 2]))
    assert (result.passed, result.checks) == (False, ["readable"])


async def test_an_image_uploaded_under_the_wrong_type_is_refused(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    result = await verify(activities, upload(store, encode(photo(), quality=90), "image/png"))
    assert (result.passed, result.checks) == (False, ["readable"])
    assert "JPEG image but was uploaded as image/png" in result.reason


async def test_a_pdf_is_refused_for_an_id_card_but_accepted_for_an_authorisation_letter(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    pdf = b"%PDF-1.7\n" + b"% signed and sealed letter\n" * 600 + b"%%EOF\n"
    ref = upload(store, pdf, "application/pdf")
    refused = await verify(activities, ref, DocumentKind.ID_CARD_BACK)
    assert (refused.passed, refused.checks) == (False, ["content_type"])
    assert "JPEG or PNG" in refused.reason
    letter = await verify(activities, ref, DocumentKind.AUTHORISATION_LETTER)
    assert letter.passed, letter.reason


async def test_a_damaged_pdf_is_refused(activities: DocumentActivities, store: LocalDocumentStore) -> None:
    ref = upload(store, b"%PDF-1.7\n" + b"0" * 20_000, "application/pdf")
    result = await verify(activities, ref, DocumentKind.CHANGE_CERTIFICATE)
    assert (result.passed, result.checks) == (False, ["readable"])


async def test_a_file_already_submitted_by_another_entity_is_refused(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    data = encode(photo(seed=7), quality=90)
    upload(store, data, owner=JIANGSU_ENTITY)
    ref = upload(store, data, owner=BEIJING_ENTITY)
    result = await verify(activities, ref, owner=BEIJING_ENTITY)
    assert (result.passed, result.checks) == (False, ["duplicate"])
    assert "another filing entity" in result.reason
    # Without an owner, a file stored by two owners still counts as a duplicate.
    plain = VerifyDocument(order_id="order-1", key="id_card_front:entity", kind=DocumentKind.ID_CARD_FRONT, ref=ref)
    result = await ActivityEnvironment().run(activities.verify_document, plain)
    assert (result.passed, result.checks) == (False, ["duplicate"])


async def test_the_same_entity_uploading_a_file_again_is_not_a_duplicate(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    data = encode(photo(seed=8), quality=90)
    upload(store, data)
    result = await verify(activities, upload(store, data))
    assert result.passed, result.reason


async def test_a_reference_whose_hash_does_not_match_the_content_is_refused(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    ref = upload(store, encode(photo(), quality=90))
    forged = ref.model_copy(update={"sha256": "0" * 64})
    result = await verify(activities, forged)
    assert (result.passed, result.checks) == (False, ["integrity"])
    assert "upload it again" in result.reason


async def test_a_reference_to_missing_content_asks_for_a_new_upload(activities: DocumentActivities) -> None:
    sha = "ab" * 32
    ref = DocumentRef(uri=f"file-store://{sha}", sha256=sha, size=20_000, content_type="image/jpeg")
    result = await verify(activities, ref)
    assert (result.passed, result.checks) == (False, ["stored"])


async def test_a_broken_store_raises_so_temporal_retries(face_vendor: FaceVendorSimulator, tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the store's root should be")
    acts = DocumentActivities(LocalDocumentStore(blocked), HttpFaceVerifier(face_vendor.url), Settings())
    sha = "cd" * 32
    ref = DocumentRef(uri=f"file-store://{sha}", sha256=sha, size=20_000, content_type="image/jpeg")
    with pytest.raises(NotADirectoryError):
        await verify(acts, ref)


def test_colour_detection_ignores_a_uniform_tint_but_sees_a_small_red_seal() -> None:
    page = Image.new("RGB", (800, 600), (250, 250, 250))
    draw = ImageDraw.Draw(page)
    for y in range(60, 540, 24):
        draw.line((60, y, 740, y), fill=(30, 30, 30), width=4)
    assert not is_colour(page)
    assert not is_colour(sepia(page))
    draw.ellipse((560, 380, 720, 540), outline=(210, 20, 30), width=10)
    assert is_colour(page)


# ---------------------------------------------------------------------------------------------- face verification


def face(seed: int = 3) -> bytes:
    return encode(photo(640, 640, seed=seed), quality=90)


async def test_face_verification_passes_when_the_vendor_matches_the_face(
    activities: DocumentActivities, store: LocalDocumentStore, face_vendor: FaceVendorSimulator
) -> None:
    before = face_vendor.requests
    result = await verify(activities, upload(store, face()), DocumentKind.FACE_VERIFICATION, who=person())
    assert result.passed, result.reason
    assert result.checks[-1] == "face"
    assert face_vendor.requests == before + 1


async def test_face_verification_fails_with_the_vendors_reason_when_the_face_does_not_match(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    who = person(id_number=REJECTED_ID)
    result = await verify(activities, upload(store, face(4)), DocumentKind.FACE_VERIFICATION, who=who)
    assert (result.passed, result.checks) == (False, ["face"])
    assert "does not match the ID photo" in result.reason


async def test_a_face_capture_that_fails_the_image_checks_never_reaches_the_vendor(
    activities: DocumentActivities, store: LocalDocumentStore, face_vendor: FaceVendorSimulator
) -> None:
    before = face_vendor.requests
    grey = encode(photocopy(photo(640, 640, seed=5)), quality=90)
    result = await verify(activities, upload(store, grey), DocumentKind.FACE_VERIFICATION, who=person())
    assert (result.passed, result.checks) == (False, ["colour"])
    assert face_vendor.requests == before


async def test_face_verification_without_the_person_is_a_non_retryable_error(
    activities: DocumentActivities, store: LocalDocumentStore
) -> None:
    with pytest.raises(ApplicationError) as refused:
        await verify(activities, upload(store, face(6)), DocumentKind.FACE_VERIFICATION, who=None)
    assert refused.value.non_retryable


async def test_an_unreachable_face_vendor_raises_so_temporal_retries(store: LocalDocumentStore) -> None:
    acts = DocumentActivities(store, HttpFaceVerifier("http://127.0.0.1:9", timeout=2), Settings())
    with pytest.raises(httpx.ConnectError):
        await verify(acts, upload(store, face(9)), DocumentKind.FACE_VERIFICATION, who=person())


async def test_the_vendor_simulator_fails_a_blank_or_tiny_image_and_is_deterministic(
    face_vendor: FaceVendorSimulator,
) -> None:
    vendor = HttpFaceVerifier(face_vendor.url)
    blank = await vendor.verify(encode(Image.new("RGB", (640, 640), (128, 128, 128))), "张三", PERSON_ID)
    assert (blank.match, blank.score) == (False, 0.0) and "blank" in blank.reason
    tiny = await vendor.verify(encode(photo(120, 120)), "张三", PERSON_ID)
    assert not tiny.match and "too small" in tiny.reason
    first = await vendor.verify(face(10), "张三", PERSON_ID)
    again = await vendor.verify(face(10), "张三", PERSON_ID)
    assert first.match and first.score == again.score and 70 <= first.score <= 100
    assert first.request_id


async def test_the_vendor_simulator_answers_400_to_a_malformed_request(face_vendor: FaceVendorSimulator) -> None:
    vendor = HttpFaceVerifier(face_vendor.url)
    with pytest.raises(FaceVendorRequestError, match="id_number"):
        await vendor.verify(face(), "张三", "12345")
    async with httpx.AsyncClient(base_url=face_vendor.url) as client:
        response = await client.post("/v1/face/compare", content=b"not json")
        assert response.status_code == 400
        response = await client.post("/v1/face/compare", json={"image": "@@@", "name": "张三", "id_number": PERSON_ID})
        assert response.status_code == 400 and "base64" in response.json()["error"]
