"""Demo data for a fresh embedded install: reference catalogues plus example content.

Catalogues are real reference data (also loaded in production with ``vnehr catalog load``);
demo content is what makes a new install show something: Hanoi facilities at different
onboarding stages, and roles for the simulator's demo citizens so each kind of user can sign in
and find their pages.
"""

from __future__ import annotations

import random
import re
from datetime import date, timedelta
from importlib import resources
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs, facilities, identity, papers, reporting, submissions
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.submissions import synth

OPERATOR = Subject(kind="person", id="demo", name="demo", grants=(Grant("department_admin"),))

#: name, kind, level, ownership, ward, onboarding steps after "registered"
FACILITIES = [
    ("Bệnh viện Đa khoa Xanh Pôn", "hospital", "specialised", "public", "00004", 4),
    ("Bệnh viện Thanh Nhàn", "hospital", "specialised", "public", "00256", 3),
    ("Trung tâm Y tế Hoàn Kiếm", "medical_centre", "basic", "public", "00070", 2),
    ("Trạm Y tế phường Hoàn Kiếm", "health_station", "initial", "public", "00070", 1),
    ("Phòng khám Đa khoa Hồng Hà", "polyclinic", "basic", "private", "00097", 0),
]
PATH = [
    facilities.State.trained,
    facilities.State.certificate_registered,
    facilities.State.test_passed,
    facilities.State.connected,
]

#: Why the demo's facilities are test_passed without a test file (their onboarding history),
#: and why they moved at all: written, as a department officer would, in Vietnamese.
NO_TEST_FILE = "dữ liệu mẫu: không gửi hồ sơ thử"
DEMO_MOVE = "dữ liệu mẫu"

#: Demo populations of the demo facilities' wards (ward_code,population).
POPULATION = "ward_code,population\n00004,21500\n00256,38200\n00070,19800\n00097,24600\n"

#: Demo citizens of the VNeID simulator and the roles they get.
DEPARTMENT_ADMIN = "001085004217"  # Nguyễn Văn An: Sở Y tế Hà Nội
FACILITY_ADMIN = "079162003581"  # Trần Thị Bình: administrator of the first facility
WARD_OFFICER = "031054007793"  # Lê Văn Cường: ward officer of Phường Hoàn Kiếm
#: Phạm Thị Dung: a doctor at the first facility (Xanh Pôn), the one connected: a clinician
#: reads patients' records only for a connected facility, and the others are still onboarding
CLINICIAN = "048190002468"
CHILD = "001217005432"  # Hoàng Minh Khang, whom An represents as his parent

#: Demo citizens with visits in their health books: personal ID, name, NGAY_SINH, GIOI_TINH,
#: synth age group, and the visits (days before today, care type).
PATIENTS = [
    (DEPARTMENT_ADMIN, "Nguyễn Văn An", "198503140000", "1", 3, [(400, "01"), (45, "01"), (9, "03")]),  # noqa: E501
    (FACILITY_ADMIN, "Trần Thị Bình", "196208020000", "2", 4, [(200, "07"), (70, "07"), (20, "01")]),  # noqa: E501
    (CHILD, "Hoàng Minh Khang", "201709010000", "1", 1, [(120, "01"), (15, "01")]),
]  # fmt: skip


def demo_icd10_titles() -> Path:
    """A short Vietnamese title file for common ICD-10 codes (demo; production loads the full
    QĐ 4469 list with ``vnehr catalog load icd10 --titles-vi FILE``)."""
    return Path(str(resources.files("vnehr.catalogs").joinpath("data", "icd10_vi_demo.csv")))


async def is_empty(session: AsyncSession) -> bool:
    return not await catalogs.list_catalogs(session)


async def load(session: AsyncSession, keys: papers.PaperKeys | None = None) -> dict[str, int]:
    """Load everything a demo needs, in the caller's transaction (``keys``: sign the demo
    papers; None leaves them out)."""
    counts = await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
    codes = []
    for name, kind, level, ownership, ward, steps in FACILITIES:
        facility = await facilities.register(
            session,
            OPERATOR,
            facilities.FacilityCreate(
                name=name,
                kind=facilities.Kind(kind),
                level=facilities.Level(level),
                ownership=facilities.Ownership(ownership),
                province_code="01",
                ward_code=ward,
            ),
        )
        for state in PATH[:steps]:
            if state == facilities.State.certificate_registered:
                # as a facility does it: a trained one moves on by itself (D10)
                # its key is not kept: the demo's files are unsigned, as a facility may send
                # them where signatures are not required
                _, pem = self_signed_certificate(name, f"{name} (demo)")
                await facilities.add_certificate(session, OPERATOR, facility.code, pem)
            elif state == facilities.State.test_passed:
                # a test file would leave test-mode visits in the demo: said, and audited
                await facilities.move(
                    session, OPERATOR, facility.code, state, NO_TEST_FILE, override=True
                )
            else:
                await facilities.move(session, OPERATOR, facility.code, state, DEMO_MOVE)
        codes.append(facility.code)
    await identity.bootstrap_grant(
        session, DEPARTMENT_ADMIN, "department_admin", province_code="01"
    )
    await identity.bootstrap_grant(
        session, FACILITY_ADMIN, "facility_admin", facility_code=codes[0]
    )
    await identity.bootstrap_grant(session, WARD_OFFICER, "ward_officer", ward_code="00070")
    await identity.bootstrap_grant(session, CLINICIAN, "clinician", facility_code=codes[0])
    counts["facility"] = len(codes)
    counts["role_grant"] = 4
    counts["visit"] = await _visits(session, codes[0], keys)
    if keys is not None:
        counts["paper"] = await _driver_certificate(session, codes[0], keys)
    # the report's denominators: ward populations (demo figures) and the first facility's own
    # count of visits this half-year
    counts["ward_population"] = await reporting.load_population(session, POPULATION)
    today = utcnow().astimezone(VIETNAM).date()
    await reporting.declare(
        session,
        OPERATOR,
        f"{today.year}H{1 if today.month <= 6 else 2}",
        codes[0],
        {
            ("outpatient_exam", True): 1200,
            ("outpatient_exam", False): 300,
            ("inpatient", True): 140,
            ("medicine_by_appointment", True): 260,
        },
    )
    await identity.add_representative(
        session,
        OPERATOR,
        agent_personal_id=DEPARTMENT_ADMIN,
        subject_person=CHILD,
        relation="parent",
        valid_from=date(2017, 9, 1),
        valid_to=None,
    )
    counts["representative"] = 1
    return counts


def self_signed_certificate(
    organization: str, common_name: str | None = None, *, days: int = 730
) -> tuple[bytes, str]:
    """A self-signed EC P-256 signing certificate of a facility (C=VN, O=``organization``,
    CN=``common_name``, the organization unless told), valid from a day ago for ``days``
    (two years): its private key (PEM, PKCS#8) and the certificate (PEM). For the demo's
    facilities and the tests' signed files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name or organization),
        ]
    )
    now = utcnow()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


async def _driver_certificate(session: AsyncSession, code: str, keys: papers.PaperKeys) -> int:
    """An's driver's health certificate, issued through the papers service like any facility."""
    system = Subject(kind="facility_system", id="demo-his", name="demo HIS",
                     scopes=frozenset({"paper.write"}), facility_code=code)  # fmt: skip
    examined = utcnow().astimezone(VIETNAM).date() - timedelta(days=30)
    await papers.issue_driver(session, keys, system, {
        "holder": {"personal_id": DEPARTMENT_ADMIN, "name": "Nguyễn Văn An",
                   "birth_date": date(1985, 3, 14), "sex": "male"},
        "examined_on": examined, "classes": ["B", "C1"], "drug_test": "negative",
        "alcohol": "negative", "conclusion": "fit", "doctor_id": "000123/HNO-CCHN",
        "doctor_name": "BS. Đỗ Thu Hà",
    })  # fmt: skip
    return 1


#: How a synthetic visit's history begins: "Nữ, 48 tuổi, đến khám vì ..."
_WHO = re.compile(r"(Nam|Nữ), \d+ tuổi")


def _age(born: str, on: str) -> int:
    """Full years from ``born`` to ``on`` (both ``yyyyMMdd...``)."""
    birth, day = (
        date(int(born[:4]), int(born[4:6]), int(born[6:8])),
        date(int(on[:4]), int(on[4:6]), int(on[6:8])),
    )
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


async def _visits(
    session: AsyncSession, facility_code: str, keys: papers.PaperKeys | None = None
) -> int:
    """Synthetic visits of the demo citizens, received through intake like any file."""
    rng = random.Random(2026)  # noqa: S311  (synthetic data, not security)
    today = utcnow().astimezone(VIETNAM).replace(tzinfo=None, second=0, microsecond=0)
    made = []
    for personal_id, name, born, sex, age_group, visits in PATIENTS:
        for days, care_type in visits:
            one = synth.make_visit(
                rng,
                facility_code=facility_code,
                ended=today - timedelta(days=days),
                care_type=care_type,
                insured=True,
                age_group=age_group,
                appointment=True if (personal_id, days) == (DEPARTMENT_ADMIN, 45) else None,
            )
            person = {"SO_CCCD": personal_id, "HO_TEN": name, "NGAY_SINH": born, "GIOI_TINH": sex}
            came = one.tables["XML1"][0]["NGAY_VAO"]
            # the narrative names the drawn patient's sex and age: the demo citizen's instead
            who = f"{'Nam' if sex == '1' else 'Nữ'}, {_age(born, came)} tuổi"
            for rows in one.tables.values():
                for row in rows:
                    row.update({k: v for k, v in person.items() if row.get(k)})
                    for key, value in row.items():
                        if _WHO.match(value):
                            row[key] = _WHO.sub(who, value, count=1)
            made.append(one)
    options = submissions.IntakeOptions(limits=submissions.Limits(), papers=keys)
    receipt = await submissions.import_file(
        session, synth.envelope(made, facility_code, created=today.date()), options
    )
    if receipt is None:  # the same bytes were imported before: nothing new
        return 0
    return sum(1 for v in receipt["visits"] if v["status"] != "rejected")
