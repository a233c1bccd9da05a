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
    last = "no certificate matches"
    for pem in certificates:
        try:
            result = XMLVerifier().verify(data, x509_cert=pem, expect_references=1)
        except (InvalidSignature, InvalidInput, etree.DocumentInvalid, etree.Error) as exc:
            last = str(exc)[:200] or type(exc).__name__
            continue
        # A valid signature over something else (another document's element pasted in) proves
        # nothing about this file: the one reference must be the whole GIAMDINHHS document.
        if isinstance(result, list):  # more than one reference: not the national shape
            last = "more than one signed reference"
            continue
        signed_xml = result.signed_xml
        if (
            signed_xml is None
            or signed_xml.getparent() is not None
            or (etree.QName(signed_xml).localname != "GIAMDINHHS")
        ):
            last = "the signature does not cover the whole GIAMDINHHS document"
            continue
        return []
    raise errors.SignatureInvalid(reason=last)
