"""The facility registry as a health department and a facility's staff use it: codes, onboarding,
listing, practitioners and signing certificates, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import facilities
from vnehr.facilities import repository, service
from vnehr.facilities.models import FacilityCodeCounter
from vnehr.facilities.models import Practitioner as PractitionerRow
from vnehr.facilities.schemas import PractitionerCreate, State
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import today_in_vietnam
from vnehr.kit.errors import VnehrError

HANOI_ADMIN = Subject(
    "person", "001085004217", "Sở Y tế Hà Nội", (Grant("department_admin", province_code="01"),)
)
HCMC_ADMIN = Subject(
    "person",
    "079162003581",
    "Sở Y tế TP HCM",
    (Grant("department_admin", province_code="79"),),
)
NATIONAL_ADMIN = Subject("person", "031054007793", "Cục Quản lý KCB", (Grant("department_admin"),))
CITIZEN = Subject("person", "048190002468", "Nguyễn Văn An", (Grant("citizen"),))

HOAN_KIEM = "00070"
BA_DINH = "00004"
THU_DAU_MOT = "25747"  # a ward of TP HCM since the 2025 reform


def facility_admin(code: str, personal_id: str = "048190002468") -> Subject:
    return Subject(
        "person",
        personal_id,
        "Quản trị cơ sở",
        (Grant("citizen"), Grant("facility_admin", facility_code=code)),
    )


def new_facility(
    name: str = "Bệnh viện Đa khoa Xanh Pôn",
    *,
    province: str = "01",
    ward: str | None = BA_DINH,
    code: str | None = None,
) -> facilities.FacilityCreate:
    return facilities.FacilityCreate(
        name=name,
        kind=facilities.Kind.hospital,
        level=facilities.Level.basic,
        ownership=facilities.Ownership.public,
        province_code=province,
        ward_code=ward,
        address="12 Chu Văn An",
        code=code,
    )


async def register(
    session: AsyncSession, subject: Subject = HANOI_ADMIN, **kwargs: str | None
) -> str:
    return (await facilities.register(session, subject, new_facility(**kwargs))).code  # type: ignore[arg-type]


async def refused(awaitable: object) -> VnehrError:
    """The coded error an operation ends with (fails the test if it succeeds)."""
    with pytest.raises(VnehrError) as caught:
        await awaitable  # type: ignore[misc]
    return caught.value


#: The facility system whose test file passed, as the intake records it.
SYSTEM = "facility_system:01001-01-0a1b2c3d"


async def walk_to(session: AsyncSession, code: str, state: State) -> None:
    """Move a facility along onboarding to ``state``, each state with its fact: a certificate
    registered, a test file passed (as the intake tells the registry)."""
    for step in service.PATH[1 : service.PATH.index(state) + 1]:
        await step_to(session, code, step)


async def step_to(session: AsyncSession, code: str, step: State) -> None:
    if step == State.certificate_registered:
        await facilities.add_certificate(session, HANOI_ADMIN, code, certificate_pem(code)[0])
    elif step == State.test_passed:
        assert await facilities.test_submission_passed(session, code, SYSTEM)
    else:
        await facilities.move(session, HANOI_ADMIN, code, step, None)


# ------------------------------------------------------------------ codes


async def test_codes_are_issued_in_order_per_province(session: AsyncSession) -> None:
    first = await facilities.register(session, HANOI_ADMIN, new_facility("  Bệnh viện Thanh Nhàn "))
    assert first.code == "01001"
    assert [await register(session) for _ in range(3)] == ["01002", "01003", "01004"]
    assert await register(session, HCMC_ADMIN, province="79", ward=THU_DAU_MOT) == "79001"

    stored = await facilities.get(session, HANOI_ADMIN, "01001")
    assert stored.name == "Bệnh viện Thanh Nhàn"
    assert stored.issued is True
    assert stored.status == "registered"
    assert stored.province_code == "01"
    assert stored.ward_code == BA_DINH
    assert stored.address == "12 Chu Văn An"
    assert stored.created_by == "person:001085004217"
    assert abs(stored.created_at - datetime.now(UTC)) < timedelta(minutes=1)


async def test_an_existing_code_is_registered_as_it_is_and_never_issued(
    session: AsyncSession,
) -> None:
    existing = await facilities.register(session, HANOI_ADMIN, new_facility(code="01005"))
    assert existing.code == "01005"
    assert existing.issued is False
    assert existing.status == "registered"
    issued = [await register(session) for _ in range(5)]
    assert issued == ["01001", "01002", "01003", "01004", "01006"]


async def test_a_code_registered_twice_is_refused(session: AsyncSession) -> None:
    await register(session, code="01005")
    error = await refused(register(session, name="Phòng khám khác", code="01005"))
    assert error.code == "FAC-0002"
    assert error.status_code == 409
    assert error.detail["code"] == "01005"
    issued = await register(session)
    error = await refused(register(session, code=issued))  # an issued code is taken too
    assert error.code == "FAC-0002"


@pytest.mark.parametrize("code", ["79005", "0100", "010055", "01a05", "01 05"])
async def test_a_code_not_of_the_province_or_not_five_digits_is_refused(
    session: AsyncSession, code: str
) -> None:
    error = await refused(register(session, code=code))
    assert error.code == "FAC-0003"
    assert error.detail["code"] == code


async def test_a_ward_of_another_province_is_refused(session: AsyncSession) -> None:
    error = await refused(register(session, ward=THU_DAU_MOT))
    assert error.code == "FAC-0007"
    assert error.detail == {"ward": THU_DAU_MOT, "province": "01"}
    assert await register(session, ward=HOAN_KIEM) == "01001"  # nothing was used up


@pytest.mark.parametrize(
    ("province", "ward"),
    [
        ("28", None),  # never a province code
        ("02", None),  # Hà Giang, merged into Tuyên Quang in 2025
        ("01", "99999"),  # no such ward
        ("01", "00061"),  # Phường Hàng Bạc, merged into Hoàn Kiếm in 2025
    ],
)
async def test_an_unknown_province_or_ward_is_refused(
    session: AsyncSession, province: str, ward: str | None
) -> None:
    error = await refused(register(session, NATIONAL_ADMIN, province=province, ward=ward))
    assert error.code == "FAC-0006"
    assert error.detail["code"] == (ward or province)


async def test_only_the_department_of_the_province_registers(session: AsyncSession) -> None:
    for outsider in (HCMC_ADMIN, CITIZEN, facility_admin("01001"), Subject("person", "1", "x")):
        error = await refused(register(session, outsider))
        assert error.code == "AUTH-0002"
        assert error.status_code == 403
    assert await register(session, NATIONAL_ADMIN) == "01001"


async def test_issuing_stops_after_999(session: AsyncSession) -> None:
    session.add(FacilityCodeCounter(province_code="01", last_sequence=998))
    await session.flush()
    assert await register(session) == "01999"
    error = await refused(register(session))
    assert error.code == "FAC-0004"
    assert error.detail == {"province": "01"}
    assert await register(session, code="01500") == "01500"  # existing codes still register


async def test_issuing_stops_when_the_last_free_code_was_registered_as_it_was(
    session: AsyncSession,
) -> None:
    await register(session, code="01999")
    session.add(FacilityCodeCounter(province_code="01", last_sequence=998))
    await session.flush()
    error = await refused(register(session))
    assert error.code == "FAC-0004"


# ------------------------------------------------------------------ onboarding


async def test_onboarding_goes_one_step_at_a_time_and_is_recorded(
    session: AsyncSession,
) -> None:
    code = await register(session)
    seen = []
    for step in service.PATH[1:]:
        await step_to(session, code, step)
        seen.append((await facilities.get(session, HANOI_ADMIN, code)).status)
    assert seen == ["trained", "certificate_registered", "test_passed", "connected"]

    history = await service.history(session, HANOI_ADMIN, code)
    assert [(e.from_state, e.to_state, e.actor, e.reason) for e in history] == [
        (None, "registered", "person:001085004217", "issued"),
        ("registered", "trained", "person:001085004217", None),
        ("trained", "certificate_registered", "person:001085004217", "certificate"),
        ("certificate_registered", "test_passed", SYSTEM, "test submission passed"),
        ("test_passed", "connected", "person:001085004217", None),
    ]
    moments = [e.at for e in history]
    assert moments == sorted(moments)
    assert all(abs(m - datetime.now(UTC)) < timedelta(minutes=1) for m in moments)


@pytest.mark.parametrize(
    ("start", "target", "allowed"),
    [
        (State.registered, State.connected, ["suspended", "trained"]),
        (State.registered, State.certificate_registered, ["suspended", "trained"]),
        (State.trained, State.test_passed, ["certificate_registered", "suspended"]),
        (State.trained, State.registered, ["certificate_registered", "suspended"]),
        (State.connected, State.test_passed, ["suspended"]),
        (State.registered, State.registered, ["suspended", "trained"]),
    ],
)
async def test_skipping_or_going_back_is_refused(
    session: AsyncSession, start: State, target: State, allowed: list[str]
) -> None:
    code = await register(session)
    await walk_to(session, code, start)
    error = await refused(facilities.move(session, HANOI_ADMIN, code, target, None))
    assert error.code == "FAC-0005"
    assert error.status_code == 409
    assert error.detail == {"allowed": allowed, "from_state": start, "to_state": target}
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == start
    assert len(await service.history(session, HANOI_ADMIN, code)) == service.PATH.index(start) + 1


@pytest.mark.parametrize("held", service.PATH)
async def test_suspension_from_any_state_and_reinstatement_to_that_state_only(
    session: AsyncSession, held: State
) -> None:
    code = await register(session)
    await walk_to(session, code, held)
    suspended = await facilities.move(session, HANOI_ADMIN, code, State.suspended, "hồ sơ thiếu")
    assert suspended.status == "suspended"

    for other in State:
        if other != held:
            error = await refused(facilities.move(session, HANOI_ADMIN, code, other, None))
            assert error.code == "FAC-0005"
            assert error.detail["allowed"] == [held.value]

    back = await facilities.move(session, HANOI_ADMIN, code, held, "đã bổ sung")
    assert back.status == held
    history = await service.history(session, HANOI_ADMIN, code)
    assert [(e.from_state, e.to_state, e.reason) for e in history[-2:]] == [
        (held, "suspended", "hồ sơ thiếu"),
        ("suspended", held, "đã bổ sung"),
    ]


async def test_a_second_suspension_returns_to_the_state_before_it(session: AsyncSession) -> None:
    code = await register(session)
    await walk_to(session, code, State.trained)
    await facilities.move(session, HANOI_ADMIN, code, State.suspended, None)
    await facilities.move(session, HANOI_ADMIN, code, State.trained, None)
    await facilities.add_certificate(session, HANOI_ADMIN, code, certificate_pem()[0])
    await facilities.move(session, HANOI_ADMIN, code, State.suspended, None)
    error = await refused(facilities.move(session, HANOI_ADMIN, code, State.trained, None))
    assert error.detail["allowed"] == ["certificate_registered"]
    back = await facilities.move(session, HANOI_ADMIN, code, State.certificate_registered, None)
    assert back.status == "certificate_registered"


async def test_only_the_department_moves_a_facility(session: AsyncSession) -> None:
    code = await register(session)
    for outsider in (HCMC_ADMIN, facility_admin(code), CITIZEN):
        error = await refused(facilities.move(session, outsider, code, State.trained, None))
        assert error.code == "AUTH-0002"
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == "registered"
    error = await refused(facilities.move(session, HANOI_ADMIN, "01999", State.trained, None))
    assert error.code == "FAC-0001"


# ------------------------------------------------------------------ listing


async def _three_in_hanoi_one_in_hcmc(session: AsyncSession) -> tuple[str, str, str, str]:
    xanh_pon = await register(session, name="Bệnh viện Đa khoa Xanh Pôn")
    nhi = await register(session, name="BỆNH VIỆN NHI TRUNG ƯƠNG", ward=HOAN_KIEM)
    phong_kham = await register(session, name="Phòng khám Đa khoa Hoàn Kiếm", ward=HOAN_KIEM)
    cho_ray = await register(
        session, HCMC_ADMIN, name="Bệnh viện Chợ Rẫy", province="79", ward=THU_DAU_MOT
    )
    return xanh_pon, nhi, phong_kham, cho_ray


async def codes(session: AsyncSession, subject: Subject, **filters: str | int | None) -> list[str]:
    return [f.code for f in await facilities.listing(session, subject, **filters)]  # type: ignore[arg-type]


async def test_a_department_sees_its_provinces_only(session: AsyncSession) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    assert await codes(session, HANOI_ADMIN) == ["01001", "01002", "01003"]
    assert await codes(session, HCMC_ADMIN) == ["79001"]
    assert await codes(session, HANOI_ADMIN, province="79") == []
    assert await codes(session, NATIONAL_ADMIN) == ["01001", "01002", "01003", "79001"]
    assert await codes(session, NATIONAL_ADMIN, province="79") == ["79001"]
    assert await codes(session, CITIZEN) == []


async def test_a_facility_admin_sees_their_facility_only(session: AsyncSession) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    admin = facility_admin("01002")
    assert await codes(session, admin) == ["01002"]
    assert await codes(session, admin, province="79") == []
    assert (await facilities.get(session, admin, "01002")).name == "BỆNH VIỆN NHI TRUNG ƯƠNG"
    for other in ("01001", "79001"):
        error = await refused(facilities.get(session, admin, other))
        assert error.code == "AUTH-0002"


async def test_staff_and_systems_see_their_facility_and_a_person_with_both_roles_both(
    session: AsyncSession,
) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    clinician = Subject(
        "person", "031054007793", "Bác sĩ", (Grant("clinician", facility_code="01003"),)
    )
    assert await codes(session, clinician) == ["01003"]
    his = Subject("facility_system", "01003-01-abcd", "HIS", facility_code="01003")
    assert await codes(session, his) == ["01003"]
    both = Subject(
        "person",
        "079162003581",
        "Sở Y tế TP HCM, quản trị một cơ sở Hà Nội",
        (
            Grant("department_admin", province_code="79"),
            Grant("facility_admin", facility_code="01002"),
        ),
    )
    assert await codes(session, both) == ["01002", "79001"]
    assert await codes(session, both, province="01") == ["01002"]
    assert await codes(session, both, q="bệnh viện") == ["01002", "79001"]


async def test_listing_filters_by_status(session: AsyncSession) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    await walk_to(session, "01002", State.trained)
    assert await codes(session, HANOI_ADMIN, status="trained") == ["01002"]
    assert await codes(session, HANOI_ADMIN, status="registered") == ["01001", "01003"]
    assert await codes(session, HANOI_ADMIN, status="connected") == []


@pytest.mark.parametrize(
    ("q", "expected"),
    [
        ("bệnh viện", ["01001", "01002"]),
        ("BỆNH VIỆN", ["01001", "01002"]),
        ("Nhi Trung Ương", ["01002"]),
        ("đa khoa", ["01001", "01003"]),
        ("ĐA KHOA", ["01001", "01003"]),
        ("hoàn kiếm", ["01003"]),
        ("benh vien", ["01001", "01002"]),  # typed without diacritics, like catalogue search
        ("NHI TRUNG UONG", ["01002"]),
        ("0100", ["01001", "01002", "01003"]),
        ("01003", ["01003"]),
        ("chợ rẫy", []),  # in TP HCM: not the Hanoi department's
        ("%", []),
        ("_", []),
    ],
)
async def test_listing_searches_names_whatever_their_case(
    session: AsyncSession, q: str, expected: list[str]
) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    assert await codes(session, HANOI_ADMIN, q=q) == expected


async def test_listing_pages_in_code_order(session: AsyncSession) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    assert await codes(session, HANOI_ADMIN, limit=2) == ["01001", "01002"]
    assert await codes(session, HANOI_ADMIN, after="01002", limit=2) == ["01003"]
    assert await codes(session, HANOI_ADMIN, q="bệnh viện", limit=1) == ["01001"]
    assert await codes(session, HANOI_ADMIN, q="bệnh viện", after="01001") == ["01002"]


async def test_a_name_search_reads_on_past_its_first_chunk_of_rows(
    session: AsyncSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    await register(session, name="Bệnh viện Thanh Nhàn")  # 01004
    monkeypatch.setattr(repository, "SEARCH_CHUNK", 2)
    assert await codes(session, HANOI_ADMIN, q="bệnh viện") == ["01001", "01002", "01004"]
    assert await codes(session, HANOI_ADMIN, q="bệnh viện", limit=2) == ["01001", "01002"]
    assert await codes(session, HANOI_ADMIN, q="thanh nhan") == ["01004"]


async def test_status_counts_cover_the_departments_provinces(session: AsyncSession) -> None:
    await _three_in_hanoi_one_in_hcmc(session)
    await walk_to(session, "01003", State.trained)
    assert await facilities.status_counts(session, HANOI_ADMIN) == {"registered": 2, "trained": 1}
    assert await facilities.status_counts(session, HCMC_ADMIN) == {"registered": 1}
    error = await refused(facilities.status_counts(session, facility_admin("01001")))
    assert error.code == "AUTH-0002"


# ------------------------------------------------------------------ practitioners


def doctor(**changes: str) -> PractitionerCreate:
    fields = {
        "practitioner_id": "CCHN-001234/HNO",
        "full_name": " Trần Thị Bình ",
        "personal_id": "001085004217",
        "title": "Bác sĩ",
        **changes,
    }
    return PractitionerCreate.model_validate(fields)


async def test_a_practitioner_works_at_two_facilities_as_one_person(
    session: AsyncSession,
) -> None:
    first = await register(session)
    second = await register(session, name="Phòng khám Đa khoa Hoàn Kiếm")

    person, role = await service.add_practitioner(session, HANOI_ADMIN, first, doctor())
    assert person.full_name == "Trần Thị Bình"
    assert (person.practitioner_id, person.personal_id, person.title) == (
        "CCHN-001234/HNO",
        "001085004217",
        "Bác sĩ",
    )
    assert (role.facility_code, role.role, role.valid_from, role.valid_to) == (
        first,
        "doctor",
        today_in_vietnam(),
        None,
    )

    again, other_role = await service.add_practitioner(
        session, facility_admin(second), second, doctor(role="nurse")
    )
    assert again.id == person.id
    assert other_role.facility_code == second
    rows = await session.scalar(
        select(func.count())
        .select_from(PractitionerRow)
        .where(PractitionerRow.practitioner_id == "CCHN-001234/HNO")
    )
    assert rows == 1
    at_second = await service.practitioners(session, facility_admin(second), second)
    assert [(p.practitioner_id, r.role) for p, r in at_second] == [("CCHN-001234/HNO", "nurse")]
    at_first = await service.practitioners(session, HANOI_ADMIN, first)
    assert [(p.practitioner_id, r.role) for p, r in at_first] == [("CCHN-001234/HNO", "doctor")]


async def test_a_practitioner_is_added_once_per_facility(session: AsyncSession) -> None:
    code = await register(session)
    await service.add_practitioner(session, facility_admin(code), code, doctor())
    error = await refused(
        service.add_practitioner(session, HANOI_ADMIN, code, doctor(role="nurse"))
    )
    assert error.code == "FAC-0023"
    assert error.status_code == 409
    assert error.detail == {"practitioner_id": "CCHN-001234/HNO"}
    assert len(await service.practitioners(session, HANOI_ADMIN, code)) == 1


async def test_only_the_facilitys_admin_or_department_adds_practitioners(
    session: AsyncSession,
) -> None:
    code = await register(session)
    other = await register(session, name="Phòng khám Đa khoa Hoàn Kiếm")
    for outsider in (facility_admin(other), HCMC_ADMIN, CITIZEN):
        error = await refused(service.add_practitioner(session, outsider, code, doctor()))
        assert error.code == "AUTH-0002"
    assert await service.practitioners(session, HANOI_ADMIN, code) == []
    error = await refused(service.add_practitioner(session, HANOI_ADMIN, "01999", doctor()))
    assert error.code == "FAC-0001"


# ------------------------------------------------------------------ certificates


def certificate_pem(
    common_name: str = "Bệnh viện Đa khoa Xanh Pôn",
    *,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> tuple[str, x509.Certificate]:
    """A self-signed EC P-256 certificate, valid from now for a year unless told otherwise."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC).replace(microsecond=0)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Sở Y tế Hà Nội"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or now)
        .not_valid_after(not_after or now + timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii"), cert


async def test_a_certificate_is_stored_with_what_identifies_it(session: AsyncSession) -> None:
    code = await register(session)
    pem, cert = certificate_pem()
    stored = await service.add_certificate(session, facility_admin(code), code, pem)
    assert stored.facility_code == code
    assert stored.fingerprint_sha256 == cert.fingerprint(hashes.SHA256()).hex()
    assert len(stored.fingerprint_sha256) == 64
    assert stored.subject == cert.subject.rfc4514_string()
    assert "CN=Bệnh viện Đa khoa Xanh Pôn" in stored.subject
    assert stored.serial_number == format(cert.serial_number, "x")
    assert stored.not_before == cert.not_valid_before_utc
    assert stored.not_after == cert.not_valid_after_utc
    assert stored.status == "active"
    assert stored.registered_by == "person:048190002468"
    assert stored.pem == pem.strip()
    listed = await service.certificates(session, HANOI_ADMIN, code)
    assert [c.fingerprint_sha256 for c in listed] == [stored.fingerprint_sha256]
    # a facility not yet trained keeps its state
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == "registered"


async def test_a_trained_facility_moves_on_when_its_certificate_is_registered(
    session: AsyncSession,
) -> None:
    code = await register(session)
    await walk_to(session, code, State.trained)
    await service.add_certificate(session, facility_admin(code), code, certificate_pem()[0])
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == "certificate_registered"
    last = (await service.history(session, HANOI_ADMIN, code))[-1]
    assert (last.from_state, last.to_state, last.actor) == (
        "trained",
        "certificate_registered",
        "person:048190002468",
    )
    # a second certificate (a renewal) changes nothing more
    await service.add_certificate(session, HANOI_ADMIN, code, certificate_pem()[0])
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == "certificate_registered"
    assert len(await service.history(session, HANOI_ADMIN, code)) == 3


async def test_the_same_certificate_is_registered_once(session: AsyncSession) -> None:
    code = await register(session)
    other = await register(session, name="Phòng khám Đa khoa Hoàn Kiếm")
    pem, cert = certificate_pem()
    await service.add_certificate(session, HANOI_ADMIN, code, pem)
    for facility in (code, other):
        error = await refused(service.add_certificate(session, HANOI_ADMIN, facility, pem))
        assert error.code == "FAC-0022"
        assert error.status_code == 409
        assert error.detail["fingerprint"] == cert.fingerprint(hashes.SHA256()).hex()
    assert await service.certificates(session, HANOI_ADMIN, other) == []


@pytest.mark.parametrize(
    "pem",
    [
        "not a certificate at all",
        "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n",
        "-----BEGIN CERTIFICATE-----\nchứng thư\n-----END CERTIFICATE-----\n",
    ],
)
async def test_garbage_is_not_a_certificate(session: AsyncSession, pem: str) -> None:
    code = await register(session)
    await walk_to(session, code, State.trained)
    error = await refused(service.add_certificate(session, HANOI_ADMIN, code, pem))
    assert error.code == "FAC-0021"
    assert error.status_code == 422
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == "trained"


async def test_an_expired_certificate_is_refused(session: AsyncSession) -> None:
    code = await register(session)
    await walk_to(session, code, State.trained)
    now = datetime.now(UTC).replace(microsecond=0)
    pem, _ = certificate_pem(
        not_before=now - timedelta(days=400), not_after=now - timedelta(days=1)
    )
    error = await refused(service.add_certificate(session, HANOI_ADMIN, code, pem))
    assert error.code == "FAC-0021"
    assert error.detail["cause"] == "expired"
    assert "expired" in error.messages()["en"]
    assert "hết hạn" in error.messages()["vi"]
    assert await service.certificates(session, HANOI_ADMIN, code) == []
    assert (await facilities.get(session, HANOI_ADMIN, code)).status == "trained"


async def test_another_facilitys_admin_cannot_register_a_certificate(
    session: AsyncSession,
) -> None:
    code = await register(session)
    other = await register(session, name="Phòng khám Đa khoa Hoàn Kiếm")
    for outsider in (facility_admin(other), HCMC_ADMIN):
        error = await refused(
            service.add_certificate(session, outsider, code, certificate_pem()[0])
        )
        assert error.code == "AUTH-0002"
