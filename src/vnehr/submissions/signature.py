"""The facility signature (CHUKYDONVI) of a GIAMDINHHS file.

The national profile is not published (open question 2 of the domain brief); we accept an
XMLDSig enveloped signature (Reference URI="" with the enveloped-signature transform) placed in
CHUKYDONVI, verified against the facility's registered certificates. See docs/decisions.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lxml import etree
from signxml import XMLVerifier  # type: ignore[attr-defined]
from signxml.exceptions import InvalidInput, InvalidSignature

from vnehr.kit.i18n import texts
from vnehr.submissions import errors
from vnehr.submissions.xmlio import HUGE_TEXT

if TYPE_CHECKING:
    from vnehr.facilities import SigningCertificate

DS = "http://www.w3.org/2000/09/xmldsig#"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

#: Why a registered certificate cannot vouch for a file, for the refusal's text.
_PROBLEMS = {
    "revoked": {"vi": "chứng thư số đã bị thu hồi", "en": "the certificate was revoked"},
    "expired": {"vi": "chứng thư số đã hết hạn", "en": "the certificate has expired"},
    "not_yet_valid": {
        "vi": "chứng thư số chưa đến ngày hiệu lực",
        "en": "the certificate is not valid yet",
    },
}


def _warning(code: str) -> dict[str, Any]:
    return {"code": code, "severity": "warning", "message": texts(code)}


def is_signed(root: etree._Element) -> bool:
    return root.find(f".//{{{DS}}}Signature") is not None


def _parser(size: int) -> etree.XMLParser:
    # (large documents with libxml2's huge option, as the intake parses them: a signed 14 MB
    # file holds a text node over libxml2's usual 10 MB)
    return etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=size > HUGE_TEXT
    )


def _shape_problem(data: bytes, parser: etree.XMLParser) -> str | None:
    """The national shape (D61): exactly one Signature in the file, in the root's CHUKYDONVI,
    with one Reference, URI="" and the enveloped-signature transform: over the whole
    document. Anything else can vouch for another element than the data read (a genuine
    signed file pasted inside a made-up one: signature wrapping). (The file was parsed and
    found safe by the intake already; signxml parses it again, and so does this.)"""
    root = etree.fromstring(data, parser)
    signatures = root.findall(f".//{{{DS}}}Signature")
    if len(signatures) != 1:
        return "more than one signature in the file"
    holder = signatures[0].getparent()
    if holder is None or holder.tag != "CHUKYDONVI" or holder.getparent() is not root:
        return f"the signature is not in {etree.QName(root).localname}/CHUKYDONVI"
    references = signatures[0].findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        return 'the signature does not cover the whole document (Reference URI="")'
    transforms = references[0].findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    if not any(t.get("Algorithm") == _ENVELOPED for t in transforms):
        return "the signature is not enveloped"
    return None


async def check(
    data: bytes, signed: bool, certificates: Sequence[SigningCertificate], required: bool
) -> list[dict[str, Any]]:
    """Verify the file's signature; returns file-level warnings. A bad signature refuses the
    file, and so does a good one made with a revoked or expired certificate; a missing one
    does too when signatures are required and the facility registered a certificate (even if
    none is usable now: the hub does not stop checking when a certificate runs out). Where
    signatures are required, a facility that never registered a certificate has every file
    refused, signed or not (SUB-0021): nothing of its can be checked."""
    if required and not certificates:
        raise errors.SignatureUncheckable()
    if not signed:
        if certificates and required:
            raise errors.SignatureMissing()
        return [_warning("SUB-0150")] if certificates else []
    if not certificates:
        return [_warning("SUB-0151")]
    parser = _parser(len(data))
    problem = _shape_problem(data, parser)
    if problem is not None:
        raise errors.SignatureInvalid(reason=problem)
    last = "no registered certificate matches"
    for certificate in certificates:
        try:
            result = XMLVerifier().verify(
                data, x509_cert=certificate.pem, expect_references=1, parser=parser
            )
        except (InvalidSignature, InvalidInput, etree.DocumentInvalid, etree.Error) as exc:
            last = str(exc)[:200] or type(exc).__name__
            continue
        if isinstance(result, list):  # (expect_references=1 already refuses this)
            last = "more than one signed reference"
            continue
        if certificate.problem:
            raise errors.SignatureInvalid(reason=_PROBLEMS[certificate.problem])
        return []
    raise errors.SignatureInvalid(reason=last)
