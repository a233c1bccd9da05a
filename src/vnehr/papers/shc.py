"""SMART Health Cards (https://spec.smarthealth.cards): the compact JWS (ES256, DEFLATE payload
holding a FHIR R4 Bundle), the ``shc:/`` numeric QR, issuer keys (JWKS) and revocation (``rid``
and the CRL). Independent SHC verifiers can check what we issue.

One hub issuer signs every paper (D37); its P-256 key is derived from the deployment secret, so
no second secret has to be kept, and its public key is published at ``/.well-known/jwks.json``.
Verification is written for speed: it runs on every scan (see ``bench/papers.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import io
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

if TYPE_CHECKING:
    import qrcode

HEALTH_CARD = "https://smarthealth.cards#health-card"
FHIR_VERSION = "4.0.1"
#: A single-chunk QR holds at most 1195 JWS characters (version 22, error correction L).
MAX_QR_JWS = 1195
#: Caps on what a scan may make us read: the JWS text and its inflated payload.
MAX_JWS = 8_000
MAX_PAYLOAD = 64_000
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_ECDSA = ec.ECDSA(hashes.SHA256())


class BadCard(Exception):
    """The QR or JWS is not a card we can read; ``reason`` is a stable word for the verdict."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise BadCard("malformed") from exc


def _coordinate(value: int) -> str:
    return b64url(value.to_bytes(32, "big"))


@dataclass(frozen=True)
class IssuerKey:
    """The hub's SHC signing key."""

    private: ec.EllipticCurvePrivateKey
    kid: str
    jwk: dict[str, str]
    rid_key: bytes

    @classmethod
    def from_secret(cls, secret: str) -> IssuerKey:
        seed = hashlib.sha256(b"vnehr.papers.shc.es256\x00" + secret.encode()).digest()
        scalar = int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1
        private = ec.derive_private_key(scalar, ec.SECP256R1())
        numbers = private.public_key().public_numbers()
        jwk = {
            "crv": "P-256",
            "kty": "EC",
            "x": _coordinate(numbers.x),
            "y": _coordinate(numbers.y),
        }
        # RFC 7638 thumbprint: the required members, sorted, no spaces
        kid = b64url(hashlib.sha256(orjson.dumps(jwk, option=orjson.OPT_SORT_KEYS)).digest())
        rid_key = hashlib.sha256(b"vnehr.papers.rid\x00" + secret.encode()).digest()
        return cls(private, kid, jwk, rid_key)

    @property
    def public(self) -> ec.EllipticCurvePublicKey:
        return self.private.public_key()

    def public_jwk(self, crl_version: int = 0) -> dict[str, Any]:
        jwk: dict[str, Any] = {**self.jwk, "kid": self.kid, "use": "sig", "alg": "ES256"}
        if crl_version:
            jwk["crlVersion"] = crl_version
        return jwk

    def rid(self, paper_id: str) -> str:
        """The paper's revocation id: not linkable to the paper without the hub's secret."""
        return b64url(hmac.new(self.rid_key, paper_id.encode(), hashlib.sha256).digest()[:9])

    def sign(self, issuer: str, issued_at: int, bundle: dict[str, Any], rid: str) -> str:
        """The compact JWS of a health card holding ``bundle``."""
        payload = {
            "iss": issuer,
            "nbf": issued_at,
            "vc": {
                "type": [HEALTH_CARD],
                "credentialSubject": {"fhirVersion": FHIR_VERSION, "fhirBundle": bundle},
                "rid": rid,
            },
        }
        header = b64url(orjson.dumps({"alg": "ES256", "zip": "DEF", "kid": self.kid}))
        deflater = zlib.compressobj(9, zlib.DEFLATED, -15)
        body = b64url(deflater.compress(orjson.dumps(payload)) + deflater.flush())
        signing_input = f"{header}.{body}".encode("ascii")
        r, s = decode_dss_signature(self.private.sign(signing_input, _ECDSA))
        return f"{header}.{body}.{b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


@dataclass(frozen=True, slots=True)
class Card:
    """A card whose signature checked out."""

    kid: str
    issuer: str
    issued_at: int
    rid: str | None
    bundle: dict[str, Any]


_headers: dict[str, dict[str, Any]] = {}


def open_card(jws: str, keys: dict[str, ec.EllipticCurvePublicKey]) -> Card:
    """Check a card's signature with one of ``keys`` (by kid) and read its payload. Raises
    ``BadCard`` with the reason: malformed, unknown_key, bad_signature, not_a_health_card."""
    if len(jws) > MAX_JWS:
        raise BadCard("malformed")
    parts = jws.split(".")
    if len(parts) != 3:
        raise BadCard("malformed")
    header_b64, body_b64, signature_b64 = parts
    header = _headers.get(header_b64)
    if header is None:
        try:
            header = orjson.loads(b64url_decode(header_b64))
        except orjson.JSONDecodeError as exc:
            raise BadCard("malformed") from exc
        if not isinstance(header, dict) or header.get("alg") != "ES256":
            raise BadCard("malformed")
        if len(_headers) < 64:  # every card of one key has the same header
            _headers[header_b64] = header
    key = keys.get(str(header.get("kid")))
    if key is None:
        raise BadCard("unknown_key")
    signature = b64url_decode(signature_b64)
    if len(signature) != 64:
        raise BadCard("bad_signature")
    der = encode_dss_signature(
        int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big")
    )
    try:
        key.verify(der, f"{header_b64}.{body_b64}".encode("ascii"), _ECDSA)
    except (InvalidSignature, UnicodeEncodeError) as exc:
        raise BadCard("bad_signature") from exc
    body = b64url_decode(body_b64)
    if header.get("zip") == "DEF":
        inflater = zlib.decompressobj(-15)
        try:
            body = inflater.decompress(body, MAX_PAYLOAD)
        except zlib.error as exc:
            raise BadCard("malformed") from exc
        if inflater.unconsumed_tail:
            raise BadCard("malformed")
    try:
        payload = orjson.loads(body)
        vc = payload["vc"]
        if HEALTH_CARD not in vc["type"]:
            raise BadCard("not_a_health_card")
        bundle = vc["credentialSubject"]["fhirBundle"]
        return Card(
            str(header["kid"]),
            str(payload["iss"]),
            int(payload.get("nbf") or 0),
            vc.get("rid"),
            bundle,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadCard("not_a_health_card") from exc


# ------------------------------------------------------------------ the QR


#: Two digits read as one hexadecimal byte (0x00..0x99, BCD), then mapped to the character
#: they stand for; a pair above 77 or with a letter becomes a non-ASCII byte.
_BCD = bytes(
    (10 * (i >> 4) + (i & 15) + 45)
    if (i >> 4) <= 9 and (i & 15) <= 9 and 10 * (i >> 4) + (i & 15) <= 77
    else 255
    for i in range(256)
)


def qr_text(jws: str) -> str:
    """``shc:/`` then two digits per JWS character (its code minus 45)."""
    return "shc:/" + "".join(f"{ord(c) - 45:02d}" for c in jws)


def jws_from_qr(text: str) -> str:
    """The JWS inside a scanned ``shc:/`` text (a pasted JWS is accepted as it is)."""
    text = text.strip()
    if text.count(".") == 2 and not text.lower().startswith("shc:/"):
        return text
    if not text.lower().startswith("shc:/"):
        raise BadCard("malformed")
    digits = text[5:]
    if "/" in digits:  # multi-chunk (deprecated in the spec): not issued here
        raise BadCard("malformed")
    if len(digits) % 2 or len(digits) > 2 * MAX_JWS or not digits.isascii():
        raise BadCard("malformed")
    # two digits per character, decoded in C (hex parsing, then a table)
    try:
        decoded = binascii.unhexlify(digits).translate(_BCD)
    except (binascii.Error, ValueError) as exc:
        raise BadCard("malformed") from exc
    if not decoded.isascii():  # a letter, or a pair above 77 ("z")
        raise BadCard("malformed")
    return decoded.decode("ascii")


def _qr(jws: str) -> qrcode.QRCode:
    # (imported here: qrcode brings Pillow, a sixth of a second that every process starting
    # would pay, and only the paper's QR needs them)
    import qrcode
    import qrcode.util

    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_L, border=4)
    code.add_data(qrcode.util.QRData(b"shc:/", mode=qrcode.util.MODE_8BIT_BYTE))
    code.add_data(qrcode.util.QRData(qr_text(jws)[5:].encode(), mode=qrcode.util.MODE_NUMBER))
    code.make(fit=True)
    return code


def qr_png(jws: str, box: int = 4) -> bytes:
    code = _qr(jws)
    code.box_size = box
    out = io.BytesIO()
    code.make_image().save(out)
    return out.getvalue()


def qr_svg(jws: str) -> str:
    """An inline SVG of the QR (for pages and PDFs)."""
    import qrcode.image.svg

    image = _qr(jws).make_image(image_factory=qrcode.image.svg.SvgPathImage)
    return str(image.to_string(encoding="unicode"))
