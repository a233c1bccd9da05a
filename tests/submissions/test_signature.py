"""Signed files: a good CHUKYDONVI signature passes, a tampered file is refused, and an unsigned
file is accepted or refused by the setting."""

from __future__ import annotations

import copy
import datetime as dt

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml import XMLSigner, methods  # type: ignore[attr-defined]
from sqlalchemy.ext.asyncio import AsyncSession

from tests.submissions.test_intake import ADMIN, facility_with_token, send, visit
from vnehr import facilities
from vnehr.kit.settings import Settings
from vnehr.submissions import synth

DS = "{http://www.w3.org/2000/09/xmldsig#}"


def certificate(name: str) -> tuple[bytes, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=365))
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM).decode()


def sign(document: bytes, key_pem: bytes, cert_pem: str) -> bytes:
    """Enveloped XMLDSig over the whole file, the Signature placed inside CHUKYDONVI."""
    root = etree.fromstring(document)
    signed = XMLSigner(
        method=methods.enveloped, signature_algorithm="ecdsa-sha256", digest_algorithm="sha256"
    ).sign(root, key=key_pem, cert=cert_pem)
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
    tampered = signed.replace(b"<SOLUONGHOSO>1<", b"<SOLUONGHOSO>2<", 1)
    assert tampered != signed
    response = await send(client, headers, tampered)
    assert (response.status_code, response.json()["code"]) == (422, "SUB-0011")


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
    assert "whole GIAMDINHHS" in response.json()["message"]["en"]


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
