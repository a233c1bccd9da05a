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
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidInput, InvalidSignature

from vnehr.kit.i18n import texts
from vnehr.kit.logging import get_logger
from vnehr.submissions import errors
from vnehr.submissions.xmlio import HUGE_TEXT

if TYPE_CHECKING:
    from vnehr.facilities import SigningCertificate

DS = "http://www.w3.org/2000/09/xmldsig#"
_ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"

log = get_logger("vnehr.intake")

#: Why a registered certificate cannot vouch for a file (``SigningCertificate.problem``) ->
#: the refusal's cause.
_PROBLEMS = {
    "revoked": "certificate_revoked",
    "expired": "certificate_expired",
    "not_yet_valid": "certificate_not_yet_valid",
}

#: The XML-signature and certificate libraries' reasons we recognise: (exception type, words
#: in its message, our cause), the first match wins. Their messages are English and name
#: their internals; the refusal carries our text (``signature.reason.<cause>`` in the
#: catalogues), the log their words. Anything else is "unverifiable".
_CAUSES: tuple[tuple[type[BaseException], tuple[str, ...], str], ...] = (
    (InvalidDigest, (), "digest_mismatch"),
    (Exception, ("key usage", "keyusage", "extended key usage"), "key_usage"),
    (InvalidCertificate, ("expired",), "certificate_expired"),
    (InvalidCertificate, ("not yet valid",), "certificate_not_yet_valid"),
    (InvalidCertificate, (), "certificate_unreadable"),
    (InvalidSignature, ("signature verification failed", "signature mismatch"), "does_not_verify"),
    (InvalidInput, ("unrecognized", "unsupported", "forbidden by configuration"),
     "unsupported_algorithm"),
    (InvalidInput, ("expected to find", "expected one of", "missing", "references without"),
     "malformed"),
    (ValueError, ("pem", "x509", "x.509", "certificate", "asn.1"), "certificate_unreadable"),
    (etree.Error, (), "malformed"),
)  # fmt: skip


def cause(exc: BaseException) -> str:
    """Our name for why the library refused a signature (``_CAUSES``), "unverifiable" if we
    do not recognise it."""
    words = str(exc).lower()
    for kind, needles, found in _CAUSES:
        if isinstance(exc, kind) and (not needles or any(n in words for n in needles)):
            return found
    return "unverifiable"


def _refused(found: str, **params: Any) -> errors.SignatureInvalid:
    """SUB-0011 with our text for ``found`` (a ``signature.reason.*`` cause) and the cause in
    the detail, for the facility's software."""
    return errors.SignatureInvalid(
        {"cause": found}, reason=texts(f"signature.reason.{found}", params)
    )


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


def _shape_problem(data: bytes, parser: etree.XMLParser) -> errors.SignatureInvalid | None:
    """The national shape (D61): exactly one Signature in the file, in the root's CHUKYDONVI,
    with one Reference, URI="" and the enveloped-signature transform: over the whole
    document. Anything else can vouch for another element than the data read (a genuine
    signed file pasted inside a made-up one: signature wrapping). (The file was parsed and
    found safe by the intake already; signxml parses it again, and so does this.)"""
    root = etree.fromstring(data, parser)
    signatures = root.findall(f".//{{{DS}}}Signature")
    if len(signatures) != 1:
        return _refused("several_signatures")
    holder = signatures[0].getparent()
    if holder is None or holder.tag != "CHUKYDONVI" or holder.getparent() is not root:
        return _refused("misplaced", root=etree.QName(root).localname)
    references = signatures[0].findall(f"{{{DS}}}SignedInfo/{{{DS}}}Reference")
    if len(references) != 1 or references[0].get("URI") != "":
        return _refused("not_whole_document")
    transforms = references[0].findall(f"{{{DS}}}Transforms/{{{DS}}}Transform")
    if not any(t.get("Algorithm") == _ENVELOPED for t in transforms):
        return _refused("not_enveloped")
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
        raise problem
    causes: list[str] = []
    for certificate in certificates:
        try:
            result = XMLVerifier().verify(
                data, x509_cert=certificate.pem, expect_references=1, parser=parser
            )
        except (InvalidSignature, InvalidInput, ValueError, etree.Error) as exc:
            causes.append(cause(exc))
            # the library's own words, for whoever looks into a facility's refused files
            log.info("signature_refused", cause=causes[-1], error=str(exc)[:500])
            continue
        if isinstance(result, list):  # (expect_references=1 already refuses this)
            causes.append("not_whole_document")
            continue
        if certificate.problem:
            raise _refused(_PROBLEMS[certificate.problem])
        return []
    # A digest mismatch means a registered key made the signature (it verified over
    # SignedInfo): the file changed since, whatever the other certificates said.
    raise _refused("digest_mismatch" if "digest_mismatch" in causes else causes[-1])
