"""The facility administrator registers what the facility's page used to only show: she gives
a person the clinician role after a check step naming them as recorded, and ends it; her IT's
system with its public key, which then gets tokens at ``/oauth/token`` until she revokes it;
and the facility's signing certificate. The same services as the API's, over HTTP as a
browser sends the forms, signed in with VNeID as the demo's Trần Thị Bình."""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtensionOID, NameOID
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from tests.submissions.test_intake import ADMIN
from tests.web.test_facility_page import BINH, _facility, _section, _shown
from tests.web.test_login import AN, login
from vnehr import audit, demo, facilities, identity
from vnehr.identity.models import RoleGrant
from vnehr.kit.clock import VIETNAM, utcnow
from vnehr.kit.settings import Settings

HOA = "079303006174"  # Võ Thị Hoa, a citizen of the simulator with no role
CUONG = "031054007793"  # Lê Văn Cường
ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


def _form(html: str, action: str) -> str:
    """The form of the page posting to ``action`` (its HTML)."""
    start = html.index(f'action="{action}"')
    return html[start : html.index("</form>", start)]


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found is not None, "no form on the page"
    return found[1]


def _table(html: str, label: str) -> str:
    """The words of the page's table named ``label``."""
    start = html.index(f'<table aria-label="{label}"')
    return _shown(html[start : html.index("</table>", start)])


def _opened(html: str) -> list[str]:
    """The folded sections of the page that are open, by their heading's id."""
    return re.findall(r'<details class="more" open><summary><h2 id="([^"]+)"', html)


async def _grants(session: AsyncSession, personal_id: str) -> list[RoleGrant]:
    stmt = select(RoleGrant).where(
        RoleGrant.personal_id == personal_id, RoleGrant.revoked_at.is_(None)
    )
    return list(await session.scalars(stmt))


async def _reads_of(session: AsyncSession, personal_id: str) -> list[audit.AuditEvent]:
    person = await identity.person_id_of(session, personal_id)
    assert person is not None
    return await audit.reads_about(session, [person], not_by=f"person:{personal_id}")


async def test_binh_gives_a_clinician_role_after_checking_the_name_and_ends_it(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await login(client, HOA)  # on record once she has signed in
    assert (await client.get("/clinic")).status_code == 403
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    form = _form(page.text, f"/facility/{code}/staff")
    assert 'name="personal_id"' in form
    checked = await client.post(
        f"/facility/{code}/staff",
        data={"csrf": _csrf(page.text), "personal_id": HOA, "role": "clinician", "step": "check"},
    )
    assert checked.status_code == 200, _shown(checked.text)[-600:]
    question = _shown(checked.text)
    assert "Võ Thị Hoa" in question  # her name as recorded, before anything is done
    assert "Bác sĩ" in question
    assert await _grants(session, HOA) == []
    # the look-up named her by a typed ID: it is in her access log
    assert [r.action for r in await _reads_of(session, HOA)] == ["grant.person.read"]

    done = await client.post(
        f"/facility/{code}/staff",
        data={"csrf": _csrf(page.text), "personal_id": HOA, "role": "clinician", "step": "confirm"},
    )
    assert done.status_code == 303, _shown(done.text)[-600:]
    assert done.headers["location"].startswith(f"/facility/{code}?")
    assert HOA not in done.headers["location"]
    shown = await client.get(done.headers["location"])
    assert "Đã giao vai trò Bác sĩ cho Võ Thị Hoa." in _shown(shown.text)
    assert "clinicians" in _opened(shown.text)  # the section just acted on is open
    assert "Võ Thị Hoa Bác sĩ" in _section(shown.text, "clinicians")
    [grant] = await _grants(session, HOA)
    assert (grant.role, grant.facility_code, grant.granted_by) == (
        "clinician",
        code,
        f"person:{BINH}",
    )
    # sent twice (a double click, a reload): one role
    await client.post(
        f"/facility/{code}/staff",
        data={"csrf": _csrf(page.text), "personal_id": HOA, "role": "clinician", "step": "confirm"},
    )
    assert len(await _grants(session, HOA)) == 1

    await login(client, HOA)
    assert (await client.get("/clinic")).status_code == 200

    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    ask = re.search(rf'href="(/facility/{code}\?revoke_grant={grant.id}[^"]*)"', page.text)
    assert ask is not None, _section(page.text, "clinicians")
    question_page = await client.get(ask[1].replace("&amp;", "&"))
    question = _form(question_page.text, f"/facility/{code}/staff/{grant.id}/revoke")
    assert "Võ Thị Hoa" in _shown(question_page.text)
    assert "clinicians" in _opened(question_page.text)
    revoked = await client.post(
        f"/facility/{code}/staff/{grant.id}/revoke", data={"csrf": _csrf(question)}
    )
    assert revoked.status_code == 303
    after = await client.get(revoked.headers["location"])
    assert "Đã thu hồi vai trò Bác sĩ của Võ Thị Hoa." in _shown(after.text)
    assert "Trần Thị Bình" in _table(after.text, "staff")  # the others stay
    assert "Võ Thị Hoa" not in _table(after.text, "staff")
    assert await _grants(session, HOA) == []
    await login(client, HOA)
    assert (await client.get("/clinic")).status_code == 403


async def test_a_role_given_without_the_check_step_still_leaves_the_look_up_in_her_log(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    """The form's confirmation, posted straight away, or the API's grant: the page then
    names her (its notice, its staff list, the question before ending the role), so the
    look-up is in her access log all the same, once for each request that gave it."""
    code = await _facility(session, steps=4)
    await login(client, HOA)
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    done = await client.post(
        f"/facility/{code}/staff",
        data={"csrf": _csrf(page.text), "personal_id": HOA, "role": "clinician", "step": "confirm"},
    )
    assert done.status_code == 303, _shown(done.text)[-600:]
    shown = await client.get(done.headers["location"])
    assert "Đã giao vai trò Bác sĩ cho Võ Thị Hoa." in _shown(shown.text)
    assert [r.action for r in await _reads_of(session, HOA)] == ["grant.person.read"]
    [grant] = await _grants(session, HOA)
    ended = await client.post(
        f"/facility/{code}/staff/{grant.id}/revoke", data={"csrf": _csrf(page.text)}
    )
    assert ended.status_code == 303

    given = await client.post(
        "/api/v1/grants", json={"personal_id": HOA, "role": "clinician", "facility_code": code}
    )
    assert given.status_code == 201, given.text
    assert "Võ Thị Hoa" not in given.text  # the answer names nobody; the page does
    assert "Võ Thị Hoa" in _table((await client.get(f"/facility/{code}")).text, "staff")
    reads = await _reads_of(session, HOA)
    assert [r.action for r in reads] == ["grant.person.read"] * 2
    assert reads[0].detail == {"role": "clinician", "facility_code": code}


def _staff_rows(html: str) -> list[str]:
    """The rows of the staff table, in their words."""
    start = html.index('<table aria-label="staff"')
    table = html[start : html.index("</table>", start)]
    return [
        _shown(row).strip() for row in re.findall(r"<tr id=\"grant-\d+\">(.*?)</tr>", table, re.S)
    ]


async def test_a_large_staff_is_listed_administrators_first_fifty_at_a_time(
    client: httpx.AsyncClient, session: AsyncSession, connection: AsyncConnection
) -> None:
    """A hospital of thousands: the page counts them, names the administrators first and
    then fifty at a time, with the way to the next fifty; its statements do not grow with
    the staff (the names read at once)."""
    code = await _facility(session, steps=4)  # Bình, its administrator; Dung, a clinician

    async def hire(first: int, count: int) -> None:
        now = utcnow()
        session.add_all(
            RoleGrant(personal_id=f"0010{n:08d}", role="clinician", facility_code=code,
                      granted_by="test", granted_at=now)
            for n in range(first, first + count)
        )  # fmt: skip
        await session.flush()

    statements: list[str] = []

    def counted(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def opened(address: str) -> tuple[httpx.Response, int]:
        statements.clear()
        event.listen(connection.sync_connection, "before_cursor_execute", counted)
        try:
            page = await client.get(address)
        finally:
            event.remove(connection.sync_connection, "before_cursor_execute", counted)
        assert page.status_code == 200, _shown(page.text)[-600:]
        return page, len(statements)

    await hire(0, 60)
    await login(client, HOA)  # a second administrator, given last, on record
    await identity.bootstrap_grant(session, HOA, "facility_admin", facility_code=code)
    await login(client, BINH)
    first, few = await opened(f"/facility/{code}")
    rows = _staff_rows(first.text)
    assert len(rows) == 50
    assert [r.split(" Quản trị")[0] for r in rows[:2]] == ["Trần Thị Bình", "Võ Thị Hoa"]
    assert "63 người có vai trò tại cơ sở" in _section(first.text, "clinicians")
    more = re.search(
        rf'id="more-staff" href="(/facility/{code}\?staff=[^"#]+)#clinicians"', first.text
    )
    assert more is not None, _section(first.text, "clinicians")
    second, _ = await opened(more[1])
    assert "clinicians" in _opened(second.text)
    rows_after = _staff_rows(second.text)
    assert len(rows_after) == 13
    assert not set(rows_after) & set(rows)
    assert "Trần Thị Bình" not in _table(second.text, "staff")
    assert 'id="more-staff"' not in second.text  # the last page
    assert f'href="/facility/{code}?staff=#clinicians"' in second.text  # back to the start

    await hire(60, 3000)
    crowded, many = await opened(f"/facility/{code}")
    assert many == few  # not one statement more for 3,000 more people
    assert len(_staff_rows(crowded.text)) == 50
    assert "3.063 người có vai trò tại cơ sở" in _section(crowded.text, "clinicians")


async def test_a_wrong_personal_id_comes_back_in_words_with_what_was_typed(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await login(client, BINH)
    csrf = _csrf((await client.get(f"/facility/{code}")).text)
    for typed, words, english in (
        ("07930300617", "có 11 ký tự; phải có đúng 12 chữ số", "has 11 characters"),
        ("999303006174", "mã tỉnh nơi đăng ký khai sinh", "birth-registration province code"),
        ("", "Số định danh cá nhân: chưa có.", "Personal ID: missing."),
    ):
        for lang, said in (("vi", words), ("en", english)):
            refused = await client.post(
                f"/facility/{code}/staff?lang={lang}",
                data={"csrf": csrf, "personal_id": typed, "role": "clinician", "step": "check"},
            )
            assert refused.status_code == 422, _shown(refused.text)[-600:]
            form = _form(refused.text, f"/facility/{code}/staff")
            assert f'value="{typed}"' in form  # what was typed is kept
            error = re.search(r'<p class="field-error" id="grant-personal_id-error">([^<]+)', form)
            assert error is not None, form
            assert said in error[1]
            assert "ID-000" not in error[1]  # words, not a code
            assert "clinicians" in _opened(refused.text)
    assert await _grants(session, "07930300617") == []


async def test_another_facilitys_administrator_cannot_give_roles_at_hers(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    other = await facilities.register(
        session,
        ADMIN,
        facilities.FacilityCreate(
            name="Bệnh viện Thanh Nhàn",
            kind=facilities.Kind.hospital,
            level=facilities.Level.specialised,
            ownership=facilities.Ownership.public,
            province_code="01",
        ),
    )
    await identity.bootstrap_grant(session, CUONG, "facility_admin", facility_code=other.code)
    await login(client, HOA)
    await login(client, CUONG)
    csrf = _csrf((await client.get(f"/facility/{other.code}")).text)
    for step in ("check", "confirm"):
        refused = await client.post(
            f"/facility/{code}/staff",
            data={"csrf": csrf, "personal_id": HOA, "role": "clinician", "step": step},
        )
        assert refused.status_code == 403, step
        assert "Võ Thị Hoa" not in refused.text
    assert await _grants(session, HOA) == []
    assert await _reads_of(session, HOA) == []  # nobody's name was read for him
    # nor does Bình make anyone an administrator: that is the department's
    await login(client, BINH)
    csrf = _csrf((await client.get(f"/facility/{code}")).text)
    refused = await client.post(
        f"/facility/{code}/staff",
        data={"csrf": csrf, "personal_id": HOA, "role": "facility_admin", "step": "confirm"},
    )
    assert refused.status_code == 403
    assert "Sở Y tế" in _shown(refused.text)
    assert await _grants(session, HOA) == []


async def test_the_department_gives_a_facility_administrator_role_from_the_page(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=4)
    await identity.bootstrap_grant(session, AN, "department_admin", province_code="01")
    await login(client, HOA)
    await login(client, AN)
    page = await client.get(f"/facility/{code}")
    form = _form(page.text, f"/facility/{code}/staff")
    assert '<option value="facility_admin"' in form  # Bình's form offers only clinicians
    done = await client.post(
        f"/facility/{code}/staff",
        data={"csrf": _csrf(page.text), "personal_id": HOA, "role": "facility_admin",
              "step": "confirm"},
    )  # fmt: skip
    assert done.status_code == 303, _shown(done.text)[-600:]
    [grant] = await _grants(session, HOA)
    assert (grant.role, grant.facility_code) == ("facility_admin", code)
    await login(client, BINH)
    assert '<option value="facility_admin"' not in (await client.get(f"/facility/{code}")).text


def _ec_key() -> tuple[str, str]:
    """A system's EC P-256 key pair made as a facility's IT would (PEM): private, public."""
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public.decode()


async def _token(
    client: httpx.AsyncClient, settings: Settings, client_id: str, private: str
) -> httpx.Response:
    """What the system's IT does next, as the page says: a signed assertion for a token."""
    now = int(time.time())
    assertion = jwt.encode(
        {"alg": "ES256"},
        {"iss": client_id, "sub": client_id, "aud": f"{settings.public_url}/oauth/token",
         "iat": now, "exp": now + 60, "jti": uuid.uuid4().hex},
        ECKey.import_key(private),
    )  # fmt: skip
    return await client.post(
        "/oauth/token",
        data={
            "grant_type": "client_credentials",
            "client_assertion_type": ASSERTION,
            "client_assertion": assertion,
        },
    )


async def test_a_system_registered_on_the_page_gets_tokens_until_it_is_revoked(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code = await _facility(session, steps=2)  # a certificate: systems may get tokens
    private, public = _ec_key()
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    form = _form(page.text, f"/facility/{code}/systems")
    assert 'enctype="multipart/form-data"' in form
    registered = await client.post(
        f"/facility/{code}/systems",
        data={
            "csrf": _csrf(page.text),
            "name": "HIS Xanh Pôn",
            "key": "",
            "scopes": ["submission.write", "checkin.write"],
        },
        files={"key_file": ("his.pem", public.encode(), "application/x-pem-file")},
    )
    assert registered.status_code == 303, _shown(registered.text)[-600:]
    shown = await client.get(registered.headers["location"])
    words = _section(shown.text, "systems")
    found = re.search(rf"\b({code}-\d\d-[0-9a-f]{{8}})\b", words)
    assert found is not None, words
    client_id = found[1]
    assert "Đã đăng ký hệ thống «HIS Xanh Pôn»" in words
    assert f"{settings.public_url}/oauth/token" in words  # what the IT does next
    assert "client_assertion" in words
    assert "systems" in _opened(shown.text)

    token = await _token(client, settings, client_id, private)
    assert token.status_code == 200, token.text
    assert token.json()["scope"] == "checkin.write submission.write"

    ask = await client.get(f"/facility/{code}?revoke_system={client_id}")
    question = _form(ask.text, f"/facility/{code}/systems/{client_id}/revoke")
    assert "HIS Xanh Pôn" in _shown(ask.text)
    revoked = await client.post(
        f"/facility/{code}/systems/{client_id}/revoke", data={"csrf": _csrf(question)}
    )
    assert revoked.status_code == 303
    after = await client.get(revoked.headers["location"])
    assert "Đã thu hồi hệ thống «HIS Xanh Pôn»." in _shown(after.text)
    assert "Đã thu hồi" in _section(after.text, "systems")
    refused = await _token(client, settings, client_id, private)
    assert refused.status_code == 401
    assert refused.json()["code"] == "FAC-0012"


async def test_a_key_set_pasted_as_json_works_and_a_wrong_key_is_told_beside_the_field(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code = await _facility(session, steps=2)
    private, public = _ec_key()
    await login(client, BINH)
    csrf = _csrf((await client.get(f"/facility/{code}")).text)
    for key, words in (
        ("không phải khóa", "không phải bộ khóa JSON (JWKS), một khóa JSON (JWK) hay khóa"),
        (private, "khóa bí mật"),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "khóa đối xứng"),
    ):
        refused = await client.post(
            f"/facility/{code}/systems",
            data={"csrf": csrf, "name": "HIS", "key": key, "scopes": ["submission.write"]},
        )
        assert refused.status_code == 422, _shown(refused.text)[-600:]
        form = _form(refused.text, f"/facility/{code}/systems")
        assert 'value="HIS"' in form
        error = re.search(r'<p class="field-error" id="system-key-error">([^<]+)', form)
        assert error is not None, form
        assert words in error[1]
        assert "FAC-0020" not in error[1]
        assert "systems" in _opened(refused.text)
        assert ("PRIVATE KEY" in form) is False  # a private key sent is not shown again
    assert await facilities.clients(session, ADMIN, code) == []

    jwk = ECKey.import_key(public).as_dict(private=False)
    registered = await client.post(
        f"/facility/{code}/systems",
        data={"csrf": csrf, "name": "HIS", "key": json.dumps(jwk), "scopes": ["checkin.write"]},
    )
    assert registered.status_code == 303, _shown(registered.text)[-600:]
    [system] = await facilities.clients(session, ADMIN, code)
    token = await _token(client, settings, system.client_id, private)
    assert token.status_code == 200, token.text


def _public_pem(curve: ec.EllipticCurve) -> str:
    key = ec.generate_private_key(curve).public_key()
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem.decode()


async def test_a_key_on_a_curve_we_cannot_verify_or_nested_text_is_told_beside_the_field(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=2)
    await login(client, BINH)
    csrf = _csrf((await client.get(f"/facility/{code}")).text)
    for key, words in (
        (_public_pem(ec.SECP224R1()), "đường cong (crv) không được hỗ trợ"),
        (_public_pem(ec.BrainpoolP256R1()), "đường cong (crv) không được hỗ trợ"),
        ("[" * 5000, "không phải bộ khóa JSON (JWKS)"),
        ('{"keys": ' + "[" * 5000 + "]" * 5000 + "}", "không phải bộ khóa JSON (JWKS)"),
    ):
        refused = await client.post(
            f"/facility/{code}/systems",
            data={"csrf": csrf, "name": "HIS", "key": key, "scopes": ["submission.write"]},
        )
        assert refused.status_code == 422, _shown(refused.text)[-600:]
        form = _form(refused.text, f"/facility/{code}/systems")
        error = re.search(r'<p class="field-error" id="system-key-error">([^<]+)', form)
        assert error is not None, form
        assert words in error[1]
    assert await facilities.clients(session, ADMIN, code) == []


def _certificate(
    days_ago: int,
    days: int,
    *,
    usage: x509.KeyUsage | None = None,
    others: tuple[x509.ExtensionType, ...] = (),
) -> str:
    """A self-signed certificate of the facility, valid from ``days_ago`` for ``days``, with
    the key ``usage`` and the ``others`` extensions given."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Bệnh viện Đa khoa Xanh Pôn"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Ký hồ sơ Xanh Pôn"),
        ]
    )
    start = utcnow() - timedelta(days=days_ago)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + timedelta(days=days))
    )
    if usage is not None:
        builder = builder.add_extension(usage, critical=True)
    for extension in others:
        builder = builder.add_extension(extension, critical=False)
    cert = builder.sign(key, hashes.SHA256())
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _with_odd_extensions(duplicated: bool) -> str:
    """A certificate whose key usage is no key usage (a NULL and bytes), or that holds one
    extension twice: the certificate itself reads, its extensions do not."""
    if not duplicated:
        garbage = x509.UnrecognizedExtension(ExtensionOID.KEY_USAGE, b"\x05\x00garbage")
        return _certificate(1, 365, others=(garbage,))
    first = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.4"), b"\x05\x00")
    second = x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.5"), b"\x05\x00")
    der = x509.load_pem_x509_certificate(
        _certificate(1, 365, others=(first, second)).encode()
    ).public_bytes(serialization.Encoding.DER)
    # the second's OID made the first's (no builder writes it twice; nobody checks its
    # signature before reading it)
    der = der.replace(b"\x06\x03\x2a\x03\x05", b"\x06\x03\x2a\x03\x04")
    cert = x509.load_der_x509_certificate(der)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


async def test_a_certificate_uploaded_is_registered_and_listed_with_its_subject_and_dates(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=1)  # trained: the certificate is its next step
    await login(client, BINH)
    page = await client.get(f"/facility/{code}")
    assert 'enctype="multipart/form-data"' in _form(page.text, f"/facility/{code}/certificates")
    pem = _certificate(1, 365)
    registered = await client.post(
        f"/facility/{code}/certificates",
        data={"csrf": _csrf(page.text), "pem": ""},
        files={"pem_file": ("xanhpon.crt", pem.encode(), "application/x-x509-ca-cert")},
    )
    assert registered.status_code == 303, _shown(registered.text)[-600:]
    shown = await client.get(registered.headers["location"])
    section = _section(shown.text, "certificates")
    start = (utcnow() - timedelta(days=1)).astimezone(VIETNAM)
    end = start + timedelta(days=365)
    assert "Đã đăng ký chứng thư số" in section
    assert "CN=Ký hồ sơ Xanh Pôn" in section  # its subject
    assert f"{start:%d/%m/%Y} – {end:%d/%m/%Y}" in section  # and validity
    assert "certificates" in _opened(shown.text)
    assert '<td id="state"><strong>Đã đăng ký chứng thư số</strong>' in shown.text
    [row] = await facilities.certificates(session, ADMIN, code)
    assert row.registered_by == f"person:{BINH}"


#: A key usage for encrypting keys, not for signing.
ENCIPHER_ONLY = x509.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=True,
    data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


@pytest.mark.parametrize(
    ("pem", "words", "english"),
    [
        (
            _certificate(400, 30),
            "chứng thư số đã hết hạn ngày",
            "the certificate expired on",
        ),
        (
            "-----BEGIN CERTIFICATE-----\n" + "QUJD" * 40 + "\n-----END CERTIFICATE-----\n",
            "không đọc được chứng thư số",
            "the certificate cannot be read",
        ),
        (
            _certificate(1, 365, usage=ENCIPHER_ONLY),
            "không được cấp để ký số",
            "not issued for signing",
        ),
        ("abc", "không đọc được chứng thư số", "the certificate cannot be read"),
        (
            _with_odd_extensions(duplicated=False),
            "không đọc được chứng thư số",
            "the certificate cannot be read",
        ),
        (
            _with_odd_extensions(duplicated=True),
            "không đọc được chứng thư số",
            "the certificate cannot be read",
        ),
    ],
    ids=["expired", "not_a_certificate", "key_usage", "short", "bad_extension", "twice"],
)
async def test_a_certificate_that_cannot_sign_is_refused_in_words_beside_the_field(
    client: httpx.AsyncClient, session: AsyncSession, pem: str, words: str, english: str
) -> None:
    code = await _facility(session, steps=1)
    await login(client, BINH)
    csrf = _csrf((await client.get(f"/facility/{code}")).text)
    for lang, said in (("vi", words), ("en", english)):
        refused = await client.post(
            f"/facility/{code}/certificates?lang={lang}", data={"csrf": csrf, "pem": pem}
        )
        assert refused.status_code == 422, _shown(refused.text)[-600:]
        form = _form(refused.text, f"/facility/{code}/certificates")
        error = re.search(r'<p class="field-error" id="certificate-pem-error">([^<]+)', form)
        assert error is not None, form
        assert said in error[1]
        assert "FAC-0021" not in error[1]
        assert pem.strip()[:40] in form  # what was pasted is kept
        assert "certificates" in _opened(refused.text)
    assert await facilities.certificates(session, ADMIN, code) == []


async def test_the_api_refuses_a_certificate_whose_extensions_do_not_read(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=1)
    await login(client, BINH)
    for duplicated in (False, True):
        refused = await client.post(
            f"/api/v1/facilities/{code}/certificates",
            json={"pem": _with_odd_extensions(duplicated)},
        )
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "FAC-0021"
        assert refused.json()["detail"]["cause"] == "unreadable"
    assert await facilities.certificates(session, ADMIN, code) == []


async def test_a_form_without_the_session_token_changes_nothing(
    client: httpx.AsyncClient, session: AsyncSession
) -> None:
    code = await _facility(session, steps=2)
    await login(client, BINH)
    for action, data in (
        ("staff", {"personal_id": HOA, "role": "clinician", "step": "confirm"}),
        ("certificates", {"pem": demo.self_signed_certificate("X")[1]}),
    ):
        forged = await client.post(f"/facility/{code}/{action}", data={"csrf": "guess", **data})
        assert forged.status_code == 403, action
        assert "AUTH-0005" in forged.text
    assert await _grants(session, HOA) == []
    assert len(await facilities.certificates(session, ADMIN, code)) == 1  # the one made before
