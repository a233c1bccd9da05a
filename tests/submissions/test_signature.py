"""Signed files: a good CHUKYDONVI signature passes, a tampered file is refused, and an unsigned
file is accepted or refused by the setting."""

from __future__ import annotations

import copy
import datetime as dt

import httpx
import pytest
import structlog
from lxml import etree
from signxml import XMLSigner, methods  # type: ignore[attr-defined]
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from structlog.testing import LogCapture

from tests.submissions.test_intake import ADMIN, facility_with_token, send, visit
from vnehr import facilities
from vnehr.demo import self_signed_certificate
from vnehr.facilities import SigningCertificate
from vnehr.facilities.models import FacilityCertificate
from vnehr.kit.settings import Settings
from vnehr.submissions import signature, synth

DS = "{http://www.w3.org/2000/09/xmldsig#}"


def certificate(name: str) -> tuple[bytes, str]:
    """A self-signed signing certificate of ``name``, valid for a year: key and certificate."""
    return self_signed_certificate(name, days=365)


def sign(document: bytes, key_pem: bytes, cert_pem: str) -> bytes:
    """Enveloped XMLDSig over the whole file, the Signature placed inside CHUKYDONVI."""
    huge = etree.XMLParser(huge_tree=len(document) > 9_000_000)
    root = etree.fromstring(document, huge)
    signer = XMLSigner(
        method=methods.enveloped, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256"
    )
    signer._parser = huge  # (signxml re-reads the document with its own parser otherwise)
    signed = signer.sign(root, key=key_pem, cert=cert_pem)
    signature = signed.find(f".//{DS}Signature")
    signed.find("CHUKYDONVI").append(signature)
    return etree.tostring(signed, xml_declaration=True, encoding="utf-8")


async def _facility_with_certificate(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> tuple[str, dict[str, str], bytes, str]:
    code, headers = await facility_with_token(client, session, settings)
    key_pem, cert_pem = certificate(f"Bệnh viện {code}")
    await facilities.add_certificate(session, ADMIN, code, cert_pem)
    return code, headers, key_pem, cert_pem


async def test_a_correctly_signed_file_is_accepted_without_warnings(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    signed = sign(synth.envelope([visit(code)], code), key_pem, cert_pem)
    response = await send(client, headers, signed)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "accepted"
    assert response.json()["warnings"] == []


async def test_a_file_changed_after_signing_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    signed = sign(synth.envelope([visit(code)], code), key_pem, cert_pem)
    tampered = signed.replace(b"<NGAYLAP>2", b"<NGAYLAP>1", 1)
    assert tampered != signed
    response = await send(client, headers, tampered)
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0011")
    checked = await client.post("/api/v1/submissions/validate", content=tampered, headers=headers)
    assert (checked.status_code, checked.json()["code"]) == (422, "SUB-0011")  # as it would be


async def test_a_signature_refusal_says_why_in_each_language_and_logs_the_librarys_words(
    client: httpx.AsyncClient,
    session: AsyncSession,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The XML-signature library's reason (English, with its internals: "Digest mismatch for
    reference 0 ()") goes to the log; the facility reads our own text, Vietnamese all through."""
    lines = LogCapture()
    monkeypatch.setattr(signature, "log", structlog.wrap_logger(None, processors=[lines]))
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    signed = sign(synth.envelope([visit(code, 11)], code), key_pem, cert_pem)
    tampered = await send(client, headers, signed.replace(b"<NGAYLAP>2", b"<NGAYLAP>1", 1))
    assert (tampered.status_code, tampered.json()["code"]) == (422, "SUB-0011")
    assert tampered.json()["message"] == {
        "vi": "Chữ ký số CHUKYDONVI không hợp lệ: nội dung tệp đã bị thay đổi sau khi ký.",
        "en": "The CHUKYDONVI digital signature is not valid: the file was changed after it "
        "was signed.",
    }
    assert tampered.json()["detail"]["cause"] == "digest_mismatch"
    assert "Digest mismatch" not in tampered.text
    assert any("Digest mismatch" in str(e.get("error")) for e in lines.entries), lines.entries

    other_key, other_cert = certificate("Kẻ giả mạo")
    forged = await send(
        client, headers, sign(synth.envelope([visit(code, 12)], code), other_key, other_cert)
    )
    assert forged.json()["message"] == {
        "vi": "Chữ ký số CHUKYDONVI không hợp lệ: chữ ký không khớp với chứng thư số nào cơ sở "
        "đã đăng ký.",
        "en": "The CHUKYDONVI digital signature is not valid: the signature does not match any "
        "certificate the facility registered.",
    }
    assert "Signature verification failed" not in forged.text
    broken = await send(
        client,
        headers,
        synth.envelope([visit(code, 13)], code).replace(
            b"<CHUKYDONVI/>",
            b'<CHUKYDONVI><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#">'
            b"<ds:SignedInfo/></ds:Signature></CHUKYDONVI>",
        ),
    )
    assert broken.json()["message"]["vi"] == (
        "Chữ ký số CHUKYDONVI không hợp lệ: chữ ký không bao trùm toàn bộ tài liệu "
        '(Reference URI="").'
    )


def test_every_reason_the_library_gives_has_our_own_text() -> None:
    """Reasons we do not recognise get the generic text, never the library's words."""
    from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput
    from signxml.exceptions import InvalidSignature as Bad

    expired = InvalidCertificate("provided x509_cert: certificate has expired at validation time")
    early = InvalidCertificate("provided x509_cert: certificate is not yet valid at validation")
    assert [
        signature.cause(exc)
        for exc in (
            InvalidDigest("Digest mismatch for reference 0 ()"),
            Bad("Signature verification failed: "),
            expired,
            early,
            InvalidInput("Expected to find XML element SignatureValue in Signature"),
            InvalidInput("Unrecognized SignatureMethod: http://example/rot13"),
            ValueError("Unable to load PEM file"),
            Bad("certificate not valid for key usage digitalSignature"),
            RuntimeError("something else entirely"),
        )
    ] == [
        "digest_mismatch",
        "does_not_verify",
        "certificate_expired",
        "certificate_not_yet_valid",
        "malformed",
        "unsupported_algorithm",
        "certificate_unreadable",
        "key_usage",
        "unverifiable",
    ]


async def test_a_file_signed_with_another_key_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, _, _ = await _facility_with_certificate(client, session, settings)
    other_key, other_cert = certificate("Kẻ giả mạo")
    response = await send(
        client, headers, sign(synth.envelope([visit(code)], code), other_key, other_cert)
    )
    assert response.json()["code"] == "SUB-0011"


async def test_unsigned_files_follow_the_setting(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, _, _ = await _facility_with_certificate(client, session, settings)
    body = synth.envelope([visit(code)], code)
    relaxed = await send(client, headers, body)
    assert relaxed.status_code == 201
    assert [w["code"] for w in relaxed.json()["warnings"]] == ["SUB-0150"]
    client._transport.app.state.settings = settings.model_copy(update={"require_signature": True})  # type: ignore[attr-defined]
    strict = await send(client, headers, synth.envelope([visit(code, 9)], code))
    assert (strict.status_code, strict.json()["code"]) == (422, "SUB-0012")


async def test_a_signature_copied_from_another_signed_document_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """The facility's certificate also signs other papers (e-invoices). Their signature, pasted
    with the element it covers into a made-up visit file, must not make the file "signed"."""
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    invoice = etree.fromstring(b'<HDon><DLHDon Id="inv1"><SHDon>42</SHDon></DLHDon></HDon>')
    signed_invoice = XMLSigner(
        method=methods.enveloped, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256"
    ).sign(invoice, key=key_pem, cert=cert_pem, reference_uri="#inv1")
    forged = etree.fromstring(synth.envelope([visit(code, 7)], code))
    etree.cleanup_namespaces(forged)
    chuky = forged.find("CHUKYDONVI")
    chuky.append(copy.deepcopy(signed_invoice.find("DLHDon")))
    chuky.append(copy.deepcopy(signed_invoice.find(f"{DS}Signature")))
    response = await send(
        client, headers, etree.tostring(forged, xml_declaration=True, encoding="utf-8")
    )
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0011")
    assert "the whole document" in response.json()["message"]["en"]


async def test_a_malformed_signature_element_is_a_clear_refusal(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, _, _ = await _facility_with_certificate(client, session, settings)
    body = synth.envelope([visit(code, 8)], code).replace(
        b"<CHUKYDONVI/>",
        b'<CHUKYDONVI><ds:Signature xmlns:ds="http://www.w3.org/2000/09/xmldsig#"/></CHUKYDONVI>',
    )
    response = await send(client, headers, body)
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0011")


def _strict(client: httpx.AsyncClient, settings: Settings) -> None:
    client._transport.app.state.settings = settings.model_copy(update={"require_signature": True})  # type: ignore[attr-defined]


async def test_a_genuine_signed_file_tucked_inside_a_made_up_one_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """Signature wrapping: a file the facility really signed (its Reference naming the root by
    Id), pasted whole into CHUKYDONVI of a made-up visit file. The signature checks out over
    the pasted copy; the visit read is the made-up one."""
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    genuine = etree.fromstring(synth.envelope([visit(code, 31)], code))
    genuine.set("Id", "hs1")
    signed = XMLSigner(
        method=methods.enveloped, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256"
    ).sign(genuine, key=key_pem, cert=cert_pem, reference_uri="#hs1")
    signed.find("CHUKYDONVI").append(signed.find(f"{DS}Signature"))
    forged = etree.fromstring(synth.envelope([visit(code, 99)], code))
    forged.find("CHUKYDONVI").append(copy.deepcopy(signed))
    response = await send(
        client, headers, etree.tostring(forged, xml_declaration=True, encoding="utf-8")
    )
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0011")
    # the same signature shape on its own (a Reference by Id, not URI=""): refused too
    alone = await send(
        client, headers, etree.tostring(signed, xml_declaration=True, encoding="utf-8")
    )
    assert (alone.status_code, alone.json()["code"]) == (422, "SUB-0011")
    assert "the whole document" in alone.json()["message"]["en"]


async def test_an_expired_certificate_does_not_switch_the_checks_off(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    await session.execute(  # time passes: the registered certificate runs out
        update(FacilityCertificate)
        .where(FacilityCertificate.facility_code == code)
        .values(not_after=dt.datetime.now(dt.UTC) - dt.timedelta(days=1))
    )
    other_key, other_cert = certificate("Kẻ giả mạo")
    forged = await send(
        client, headers, sign(synth.envelope([visit(code, 21)], code), other_key, other_cert)
    )
    assert (forged.status_code, forged.json()["code"]) == (422, "SUB-0011")
    own = await send(
        client, headers, sign(synth.envelope([visit(code, 22)], code), key_pem, cert_pem)
    )
    assert (own.status_code, own.json()["code"]) == (422, "SUB-0011")
    assert "expired" in own.json()["message"]["en"]
    assert "hết hạn" in own.json()["message"]["vi"]
    _strict(client, settings)
    unsigned = await send(client, headers, synth.envelope([visit(code, 23)], code))
    assert (unsigned.status_code, unsigned.json()["code"]) == (422, "SUB-0012")


async def test_a_revoked_certificate_signs_nothing_any_more(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    code, headers, key_pem, cert_pem = await _facility_with_certificate(client, session, settings)
    before = await send(
        client, headers, sign(synth.envelope([visit(code, 41)], code), key_pem, cert_pem)
    )
    assert before.status_code == 201, before.text
    registered = await session.scalar(
        select(FacilityCertificate.id).where(FacilityCertificate.facility_code == code)
    )
    assert registered is not None
    revoked = await facilities.revoke_certificate(session, ADMIN, code, registered)
    assert revoked.status == "revoked"
    after = await send(
        client, headers, sign(synth.envelope([visit(code, 42)], code), key_pem, cert_pem)
    )
    assert (after.status_code, after.json()["code"]) == (422, "SUB-0011")
    assert "revoked" in after.json()["message"]["en"]
    assert "thu hồi" in after.json()["message"]["vi"]


async def test_a_large_signed_file_is_verified_like_the_intake_parses_it() -> None:
    """A file over 10 MB of text in one node (under the 20 MB cap) is parsed with libxml2's
    huge option by the intake; the signature check must read it the same way."""
    key_pem, cert_pem = certificate("Bệnh viện lớn")
    document = synth.envelope([visit("01001", 51)], "01001").replace(
        b"<CHUKYDONVI/>", b"<GHICHU>" + b"A" * 10_500_000 + b"</GHICHU><CHUKYDONVI/>"
    )
    signed = sign(document, key_pem, cert_pem)
    assert await signature.check(signed, True, [SigningCertificate(cert_pem)], False) == []


async def test_where_signatures_are_required_a_facility_without_a_certificate_is_refused(
    client: httpx.AsyncClient, session: AsyncSession, settings: Settings
) -> None:
    """A facility connected without a certificate (by the department's audited override, or
    before onboarding checked its facts) has no key the hub could check a signature with. Where
    signatures are required its files are refused, unsigned or signed with a key nobody
    registered (SUB-0021, which says what to do), as a facility with a certificate would have
    its unsigned file refused (SUB-0012); before, both were accepted without a word."""
    code, headers = await facility_with_token(client, session, settings)
    assert await facilities.intake_context(session, code) == (facilities.State.connected, [])
    key_pem, cert_pem = certificate("Bệnh viện chưa đăng ký")
    relaxed = await send(client, headers, synth.envelope([visit(code, 61)], code))
    assert (relaxed.status_code, relaxed.json()["warnings"]) == (201, [])
    unchecked = await send(
        client, headers, sign(synth.envelope([visit(code, 62)], code), key_pem, cert_pem)
    )
    assert unchecked.status_code == 201
    assert [w["code"] for w in unchecked.json()["warnings"]] == ["SUB-0151"]

    _strict(client, settings)
    unsigned = await send(client, headers, synth.envelope([visit(code, 63)], code))
    assert (unsigned.status_code, unsigned.json()["code"]) == (422, "SUB-0021")
    assert "no registered signing certificate" in unsigned.json()["message"]["en"]
    assert "chưa đăng ký chứng thư số" in unsigned.json()["message"]["vi"]
    signed = await send(
        client, headers, sign(synth.envelope([visit(code, 64)], code), key_pem, cert_pem)
    )
    assert (signed.status_code, signed.json()["code"]) == (422, "SUB-0021")
    checked = await client.post(
        "/api/v1/submissions/validate",
        content=synth.envelope([visit(code, 65)], code),
        headers=headers,
    )
    assert (checked.status_code, checked.json()["code"]) == (422, "SUB-0021")  # as it would be
