"""Errors of the electronic papers (texts in vnehr/locale)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from vnehr.kit.errors import VnehrError


class UnknownPaper(VnehrError):
    status_code = 404
    code = "PAP-0001"


class NotIssuer(VnehrError):
    status_code = 403
    code = "PAP-0002"


class AlreadyRevoked(VnehrError):
    status_code = 409
    code = "PAP-0003"


class PaperRejected(VnehrError):
    """One or more paper rules failed; ``detail.issues`` lists them like the intake does."""

    status_code = 422
    code = "PAP-0004"


class UnknownVisit(VnehrError):
    status_code = 404
    code = "PAP-0005"


class DuplicatePaper(VnehrError):
    status_code = 409
    code = "PAP-0006"


class FacilityMayNotIssue(VnehrError):
    """Only a connected facility issues papers (an onboarding one sends test visits only)."""

    status_code = 403
    code = "PAP-0007"
    worded: ClassVar[Mapping[str, str]] = {"status": "web.department.state"}


class NotTheHolder(VnehrError):
    """The holder a paper names by personal ID has signed in with VNeID, and the paper's name
    or birth date is not what VNeID confirmed of them: most likely someone else's paper under
    a mistyped ID (D150). ``detail.fields`` names the fields that differ, never what VNeID
    has."""

    status_code = 422
    code = "PAP-0008"
