"""Errors of the health book (texts in vnehr/locale)."""

from __future__ import annotations

from vnehr.kit.errors import VnehrError


class NotInYourBook(VnehrError):
    """The visit does not exist or belongs to someone the caller does not act for (the two are
    not told apart, so nobody learns that someone else's visit exists)."""

    status_code = 404
    code = "HB-0001"


class NotYourWard(VnehrError):
    status_code = 403
    code = "HB-0002"


class NoBookYet(VnehrError):
    """The signed-in person is not known yet (never signed in through VNeID)."""

    status_code = 404
    code = "HB-0003"


class NotInYourLog(VnehrError):
    status_code = 404
    code = "HB-0004"


class UnknownDispute(VnehrError):
    status_code = 404
    code = "HB-0005"


class FindingMissing(VnehrError):
    """A dispute closes only with what the department found: the citizen reads it."""

    status_code = 422
    code = "HB-0006"


class NotYourLink(NotInYourLog):
    """A representation link that does not exist or is of someone the caller does not act
    for, reported as wrong: refused as a read not in one's log is, the two not told apart."""

    status_code = 404
    code = "HB-0007"


class NotALinkCase(VnehrError):
    """Ending a link from a case about a read: only a case about a link ends one."""

    status_code = 409
    code = "HB-0008"


class CaseClosed(VnehrError):
    """Ending a link from a case another reviewer closed meanwhile with another finding (a
    review page left open): the citizen was answered; nothing is ended."""

    status_code = 409
    code = "HB-0009"
