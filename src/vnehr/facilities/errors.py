"""Errors of the facilities context (FAC-xxxx; texts in vnehr/locale)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from vnehr.kit.errors import VnehrError


class UnknownFacility(VnehrError):
    status_code = 404
    code = "FAC-0001"


class CodeTaken(VnehrError):
    status_code = 409
    code = "FAC-0002"


class BadFacilityCode(VnehrError):
    status_code = 422
    code = "FAC-0003"


class SequenceExhausted(VnehrError):
    status_code = 409
    code = "FAC-0004"


class TransitionRefused(VnehrError):
    status_code = 409
    code = "FAC-0005"
    worded: ClassVar[Mapping[str, str]] = {
        "from_state": "web.department.state",
        "to_state": "web.department.state",
    }


class NoUsableCertificate(VnehrError):
    """``certificate_registered`` stands for a signing certificate the hub can check files
    with: the facility has none that is active and valid now."""

    status_code = 409
    code = "FAC-0008"


class NoTestPassed(VnehrError):
    """``test_passed`` stands for a test file the hub accepted (D19): none has been."""

    status_code = 409
    code = "FAC-0009"


class OverrideWithoutReason(VnehrError):
    status_code = 422
    code = "FAC-0027"
    worded: ClassVar[Mapping[str, str]] = {"to_state": "web.department.state"}


class UnknownPlace(VnehrError):
    status_code = 422
    code = "FAC-0006"


class WardOutsideProvince(VnehrError):
    status_code = 422
    code = "FAC-0007"


class BadJwks(VnehrError):
    status_code = 422
    code = "FAC-0020"


class BadCertificate(VnehrError):
    status_code = 422
    code = "FAC-0021"


class CertificateTaken(VnehrError):
    status_code = 409
    code = "FAC-0022"


class PractitionerTaken(VnehrError):
    status_code = 409
    code = "FAC-0023"


class UnknownClient(VnehrError):
    status_code = 404
    code = "FAC-0024"


class UnknownCertificate(VnehrError):
    status_code = 404
    code = "FAC-0026"


class UnknownScope(VnehrError):
    status_code = 422
    code = "FAC-0025"


class OAuthError(VnehrError):
    """Token-endpoint errors; the body also carries RFC 6749 ``error``/``error_description``."""

    oauth_error: ClassVar[str] = "invalid_request"


class TokenRequestInvalid(OAuthError):
    status_code = 400
    code = "FAC-0010"
    oauth_error = "invalid_request"


class GrantTypeUnsupported(OAuthError):
    status_code = 400
    code = "FAC-0011"
    oauth_error = "unsupported_grant_type"


class ClientNotAllowed(OAuthError):
    status_code = 401
    code = "FAC-0012"
    oauth_error = "invalid_client"


class AssertionSignatureInvalid(OAuthError):
    status_code = 401
    code = "FAC-0013"
    oauth_error = "invalid_client"


class AssertionExpired(OAuthError):
    status_code = 401
    code = "FAC-0014"
    oauth_error = "invalid_client"


class AssertionReplayed(OAuthError):
    status_code = 401
    code = "FAC-0015"
    oauth_error = "invalid_client"


class AssertionClaimsInvalid(OAuthError):
    status_code = 401
    code = "FAC-0016"
    oauth_error = "invalid_client"


class ScopeNotAllowed(OAuthError):
    status_code = 400
    code = "FAC-0017"
    oauth_error = "invalid_scope"


class FacilityNotConnected(OAuthError):
    status_code = 401
    code = "FAC-0018"
    worded: ClassVar[Mapping[str, str]] = {"status": "web.department.state"}
    oauth_error = "invalid_client"


class SearchTooShort(VnehrError):
    """A search of the facilities with fewer letters and digits than it needs: one letter
    would match most of the registry."""

    status_code = 422
    code = "FAC-0028"
