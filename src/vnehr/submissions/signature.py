"""The facility signature (CHUKYDONVI) of a GIAMDINHHS file.

The national profile is not published (open question 2 of the domain brief); we accept an
XMLDSig enveloped signature (Reference URI="" with the enveloped-signature transform) placed in
CHUKYDONVI, verified against the facility's registered certificates. See docs/decisions.md.
"""

from __future__ import annotations

from typing import Any

from lxml import etree
from signxml import XMLVerifier  # type: ignore[attr-defined]
from signxml.exceptions import InvalidInput, InvalidSignature

from vnehr.kit.i18n import texts
from vnehr.submissions import errors

DS = "http://www.w3.org/2000/09/xmldsig#"


def _warning(code: str) -> dict[str, Any]:
    return {"code": code, "severity": "warning", "message": texts(code)}


def is_signed(root: etree._Element) -> bool:
    return root.find(f".//{{{DS}}}Signature") is not None


async def check(
    data: bytes, signed: bool, certificates: list[str], required: bool
) -> list[dict[str, Any]]:
    """Verify the file's signature; returns file-level warnings. A bad signature refuses the
    file; a missing one does too when signatures are required and a certificate is registered."""
    if not signed:
        if certificates and required:
            raise errors.SignatureMissing()
        return [_warning("SUB-0150")] if certificates else []
    if not certificates:
        return [_warning("SUB-0151")]
    last: Exception | None = None
    for pem in certificates:
        try:
            XMLVerifier().verify(data, x509_cert=pem)
            return []
        except (InvalidSignature, InvalidInput) as exc:
            last = exc
    raise errors.SignatureInvalid(reason=str(last)[:200] if last else "no certificate matches")
