"""A paper as a Vietnamese PDF with its QR, signed with PDF signatures (pyHanko): from
2026-06-01 two of them, the doctor's and then the facility's (in place of the seal, TT 06/2026
Đ5 k2); before that the facility's alone.

Signing keys: in development and tests the hub's signing authority derives a P-256 key and a
certificate per facility and per doctor from the deployment secret, under its own root (D41).
In production the keys live in the facilities' remote-signing services or an HSM; they plug in
as another ``SignerSource``. ``check`` validates every signature against the trusted roots.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vnehr.kit.i18n import born
from vnehr.kit.numerals import install as install_numerals
from vnehr.papers import card

TWO_SIGNATURES_FROM = date(2026, 6, 1)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _vn_date(value: str | None) -> str:
    if not value:
        return ""
    day = value[:10]
    text = f"{day[8:10]}/{day[5:7]}/{day[0:4]}"
    return f"{value[11:16]} {text}" if len(value) > 10 else text


_env.filters["vn_date"] = _vn_date
#: a holder's birth as far as it is known, in the book's words ("năm 1980", D111)
_env.filters["born"] = lambda value: born(value, "vi")
install_numerals(_env, "vi")


def html(content: dict[str, Any], *, paper_id: str, status: str, qr_svg: str) -> str:
    return _env.get_template("paper.html").render(
        c=content,
        facts=content.get("facts") or {},
        paper_id=paper_id,
        status=status,
        qr_svg=qr_svg,
        title=card.KIND_TITLES[content["kind"]],
        fitness=card.FITNESS,
    )


def render(content: dict[str, Any], *, paper_id: str, status: str, qr_svg: str) -> bytes:
    from weasyprint import HTML

    body: bytes = HTML(
        string=html(content, paper_id=paper_id, status=status, qr_svg=qr_svg)
    ).write_pdf()
    return body


# ------------------------------------------------------------------ signing keys


@dataclass(frozen=True, slots=True)
class Identity:
    """Who signs: a facility (by code) or a doctor (by practitioner id) of a facility."""

    role: str  # facility | doctor
    key: str
    name: str
    facility_code: str


class SignerSource(Protocol):
    def credentials(self, who: Identity) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]: ...

    @property
    def roots(self) -> list[x509.Certificate]: ...


def _derived_key(secret: str, label: str) -> ec.EllipticCurvePrivateKey:
    seed = hashlib.sha256(f"vnehr.papers.pdf\x00{label}\x00{secret}".encode()).digest()
    return ec.derive_private_key(
        int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1()
    )


def _serial(label: str) -> int:
    return int.from_bytes(hashlib.sha256(label.encode()).digest()[:16], "big") >> 1


class HubAuthority:
    """Development signing authority: one root, certificates issued on demand, deterministic
    (the same secret gives the same keys and certificates on every worker)."""

    NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
    NOT_AFTER = datetime(2035, 12, 31, tzinfo=UTC)

    def __init__(self, secret: str) -> None:
        self._secret = secret
        self._issued: dict[Identity, tuple[ec.EllipticCurvePrivateKey, x509.Certificate]] = {}

    @cached_property
    def _root(self) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = _derived_key(self._secret, "root")
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vnehr"),
                x509.NameAttribute(NameOID.COMMON_NAME, "vnehr paper signing root (development)"),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(_serial("root"))
            .not_valid_before(self.NOT_BEFORE)
            .not_valid_after(self.NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        return key, cert

    @property
    def roots(self) -> list[x509.Certificate]:
        return [self._root[1]]

    def credentials(self, who: Identity) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        found = self._issued.get(who)
        if found is not None:
            return found
        root_key, root = self._root
        label = f"{who.role}:{who.facility_code}:{who.key}"
        key = _derived_key(self._secret, label)
        # X.509 allows at most 64 characters in a common name and a serial number
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "VN"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, who.facility_code),
                x509.NameAttribute(NameOID.COMMON_NAME, _shortened(who.name or who.key)),
                x509.NameAttribute(NameOID.SERIAL_NUMBER, _shortened(who.key)),
            ]
        )
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root.subject)
            .public_key(key.public_key())
            .serial_number(_serial(label))
            .not_valid_before(self.NOT_BEFORE)
            .not_valid_after(self.NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
                critical=False,
            )
            .sign(root_key, hashes.SHA256())
        )
        self._issued[who] = (key, cert)
        return key, cert


def _shortened(text: str, longest: int = 64) -> str:
    """At most ``longest`` bytes of UTF-8, as X.509 counts a name's length, cut between
    characters, "…" (three bytes) marking the cut."""
    data = text.encode()
    if len(data) <= longest:
        return text
    return data[: longest - 3].decode(errors="ignore") + "…"


def signers_of(content: dict[str, Any]) -> list[Identity]:
    """The doctor (from 2026-06-01) and then the facility. A paper naming several doctors
    ("a;b", as MA_BAC_SI lists them) is signed by the first."""
    facility = content["facility"]
    found = []
    doctor = content.get("doctor") or {}
    code = next((c.strip() for c in (doctor.get("id") or "").split(";") if c.strip()), "")
    if date.fromisoformat(content["signed_on"]) >= TWO_SIGNATURES_FROM and code:
        found.append(Identity("doctor", code, doctor.get("name") or code, facility["code"]))
    found.append(
        Identity(
            "facility", facility["code"], facility.get("name") or facility["code"], facility["code"]
        )
    )
    return found


def _asn1(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> tuple[Any, Any]:
    from asn1crypto import keys as asn1_keys
    from asn1crypto import x509 as asn1_x509

    der_key = key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return (
        asn1_keys.PrivateKeyInfo.load(der_key),
        asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER)),
    )


async def sign(pdf: bytes, who: list[Identity], source: SignerSource) -> bytes:
    """Sign ``pdf`` once per identity, each an incremental update over the last."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    roots = [
        asn1_x509.Certificate.load(r.public_bytes(serialization.Encoding.DER)) for r in source.roots
    ]
    data = pdf
    for index, identity in enumerate(who, start=1):
        key, cert = _asn1(*source.credentials(identity))
        signer = signers.SimpleSigner(
            signing_cert=cert,
            signing_key=key,
            cert_registry=SimpleCertificateStore.from_certs([cert, *roots]),  # type: ignore[no-untyped-call]
        )
        meta = signers.PdfSignatureMetadata(
            field_name=f"Signature{index}_{identity.role}",
            reason="Bác sĩ ký" if identity.role == "doctor" else "Cơ sở khám, chữa bệnh ký",
            name=identity.name,
            location="Việt Nam",
        )
        out = await signers.async_sign_pdf(
            IncrementalPdfFileWriter(io.BytesIO(data)), meta, signer=signer
        )
        data = out.getvalue()
    return data


@dataclass(frozen=True, slots=True)
class SignatureCheck:
    field: str
    signer: str
    intact: bool
    trusted: bool
    covers: str  # ENTIRE_FILE | ENTIRE_REVISION | UNCOVERED
    #: What was changed after this signature: NONE, LTA_UPDATES, FORM_FILLING (a later
    #: signature), ANNOTATIONS or OTHER (anything else, such as the page drawn over).
    changed_after: str = "OTHER"


#: Changes after a signature that leave what it signed as it was: the next signature.
HARMLESS_CHANGES = frozenset({"NONE", "LTA_UPDATES", "FORM_FILLING"})
#: The key words of a paper's PDF: where its paper id is read back (``paper_id_of``).
PAPER_KEYWORD = "vnehr-paper:"


def problem(found: list[SignatureCheck]) -> str | None:
    """Why a signed PDF is not authentic, or None: every signature intact and from the
    trusted roots, and nothing changed after the signatures but the next signature (the last
    one covers the entire file). A signature stays intact when a page is drawn over in an
    incremental update after it: only the coverage and the changes tell."""
    if not found:
        return "no_signature"
    if not all(s.intact for s in found):
        return "not_intact"
    if not all(s.trusted for s in found):
        return "not_trusted"
    if not any(s.covers == "ENTIRE_FILE" for s in found) or any(
        s.changed_after not in HARMLESS_CHANGES for s in found
    ):
        return "changed_after_signing"
    return None


def paper_id_of(pdf: bytes) -> str | None:
    """The paper id written in a paper's PDF (its key words), to look up its status; read only
    from a PDF found authentic, whose every byte is signed."""
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader

    try:
        info = PdfFileReader(io.BytesIO(pdf), strict=False).trailer_view.get("/Info")
        words = str(info.get_object().get("/Keywords") or "") if info is not None else ""
    except (PdfReadError, ValueError, KeyError, TypeError, AttributeError):
        return None
    for word in words.split(","):
        if word.strip().startswith(PAPER_KEYWORD):
            return word.strip()[len(PAPER_KEYWORD) :] or None
    return None


async def check(pdf: bytes, roots: list[x509.Certificate]) -> list[SignatureCheck]:
    """Validate every signature of a PDF against ``roots`` (a changed byte makes it not
    intact; a signer outside the roots makes it not trusted; what was added after it is in
    ``covers`` and ``changed_after``: see ``problem``)."""
    from asn1crypto import x509 as asn1_x509
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import async_validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    trust = [asn1_x509.Certificate.load(r.public_bytes(serialization.Encoding.DER)) for r in roots]
    try:
        reader = PdfFileReader(io.BytesIO(pdf), strict=False)
        signatures = list(reader.embedded_signatures)
    except (PdfReadError, ValueError, KeyError):
        return []
    found = []
    for embedded in signatures:
        try:
            status = await async_validate_pdf_signature(
                embedded, ValidationContext(trust_roots=trust, allow_fetching=False)
            )
            found.append(
                SignatureCheck(
                    field=embedded.field_name,
                    signer=status.signing_cert.subject.human_friendly,
                    intact=bool(status.intact and status.valid),
                    trusted=bool(status.trusted),
                    covers=status.coverage.name if status.coverage else "UNCOVERED",
                    changed_after=(
                        status.modification_level.name if status.modification_level else "OTHER"
                    ),
                )
            )
        except Exception:  # noqa: BLE001 - a broken signature is a failed check, not a 500
            found.append(SignatureCheck(embedded.field_name, "", False, False, "UNCOVERED"))
    return found
