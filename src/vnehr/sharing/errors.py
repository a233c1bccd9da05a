"""Errors of sharing between facilities (texts in vnehr/locale)."""

from __future__ import annotations

from vnehr.kit.errors import VnehrError


class NoConsent(VnehrError):
    status_code = 403
    code = "SHR-0001"


class NotAClinician(VnehrError):
    """A clinician naming a facility where they hold no clinician role."""

    status_code = 403
    code = "SHR-0002"


class ChooseFacility(VnehrError):
    """A clinician of several facilities must say which one they are working at."""

    status_code = 422
    code = "SHR-0012"


class NoClinicianRole(VnehrError):
    status_code = 403
    code = "SHR-0013"


class UnknownPatient(VnehrError):
    status_code = 404
    code = "SHR-0003"


class UnknownDirective(VnehrError):
    status_code = 404
    code = "SHR-0004"


class BadReason(VnehrError):
    status_code = 422
    code = "SHR-0005"


class UnknownEmergency(VnehrError):
    status_code = 404
    code = "SHR-0006"


class BadCategory(VnehrError):
    status_code = 422
    code = "SHR-0007"


class BadReceptionCode(VnehrError):
    status_code = 403
    code = "SHR-0008"


class ReasonTooShort(VnehrError):
    """Break-glass without a written reason: the citizen and the reviewer read this text."""

    status_code = 422
    code = "SHR-0009"


class NoteMissing(VnehrError):
    """A review closes an emergency access only with what the reviewer found."""

    status_code = 422
    code = "SHR-0010"


class BadDays(VnehrError):
    status_code = 422
    code = "SHR-0011"


class OutcomeMissing(VnehrError):
    """A review says whether the access was justified: an unjustified one ends at once."""

    status_code = 422
    code = "SHR-0016"


class SharesThemselves(VnehrError):
    """A representative acting on the sharing of a person who may be 16 or more: from then the
    young person decides whom their record is shared with (D132)."""

    status_code = 403
    code = "SHR-0014"


class UnknownFacility(VnehrError):
    """A share naming a facility code that is not in the registry."""

    status_code = 422
    code = "SHR-0015"


class ReviewsOwnAccess(VnehrError):
    """The one who opened an emergency access does not review it: the review is someone
    else's look at it (another administrator of the facility, or the department)."""

    status_code = 403
    code = "SHR-0017"


class FacilitySuspended(VnehrError):
    """A clinician of a facility the department suspended: its staff read no patient's record,
    open none in an emergency and use no reception code until it is reinstated."""

    status_code = 403
    code = "SHR-0018"


class FacilityNotConnected(VnehrError):
    """A clinician of a facility still onboarding (not yet connected): real patients' records
    go only to connected facilities, as real visits come only from them (D19, D67)."""

    status_code = 403
    code = "SHR-0019"


class EmergencyBarred(VnehrError):
    """A clinician whose emergency access to this patient was found unjustified lately: they
    open no new one on the patient for the bar's days (another clinician still can)."""

    status_code = 403
    code = "SHR-0020"


class NoFacilityChosen(VnehrError):
    """The sharing page's share with "one facility" chosen and no facility named: an empty box
    never means every facility there; that is a choice of its own (the API names "*")."""

    status_code = 422
    code = "SHR-0021"
