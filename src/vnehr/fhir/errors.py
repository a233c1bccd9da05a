"""Errors of the FHIR API (texts in vnehr/locale). Every error under /fhir/R4, these and any
other, reaches the caller as an OperationOutcome carrying the same stable code."""

from __future__ import annotations

from vnehr.kit.errors import VnehrError


class BadSearch(VnehrError):
    status_code = 400
    code = "FHIR-0001"


class UnknownResource(VnehrError):
    """Not there, or not in the caller's compartment (the two are not told apart)."""

    status_code = 404
    code = "FHIR-0002"


class UnsupportedType(VnehrError):
    status_code = 404
    code = "FHIR-0003"


class NameAPatient(VnehrError):
    """A facility system searches one patient's records at a time."""

    status_code = 400
    code = "FHIR-0004"


class UnknownVersion(VnehrError):
    status_code = 404
    code = "FHIR-0005"


class NotForYou(VnehrError):
    status_code = 403
    code = "FHIR-0006"


class BadBody(VnehrError):
    status_code = 400
    code = "FHIR-0007"
