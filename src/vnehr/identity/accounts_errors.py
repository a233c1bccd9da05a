"""Errors of identity's registry and sign-in (ID-01xx; texts in vnehr/locale)."""

from vnehr.kit.errors import VnehrError


class LevelTooLow(VnehrError):
    status_code = 403
    code = "ID-0101"


class UnknownPerson(VnehrError):
    status_code = 404
    code = "ID-0102"


class NoAccount(VnehrError):
    status_code = 404
    code = "ID-0103"


class SignInRejected(VnehrError):
    status_code = 401
    code = "ID-0104"


class PeriodInvalid(VnehrError):
    status_code = 422
    code = "ID-0105"


class NotProvisional(VnehrError):
    status_code = 409
    code = "ID-0106"


class BadGrant(VnehrError):
    status_code = 422
    code = "ID-0107"


class SignInFailed(VnehrError):
    status_code = 401
    code = "ID-0108"


class ProviderUnavailable(VnehrError):
    status_code = 503
    code = "ID-0109"


class UnknownWard(VnehrError):
    status_code = 422
    code = "ID-0110"


class BirthInFuture(VnehrError):
    status_code = 422
    code = "ID-0111"


class BirthBeforeMother(VnehrError):
    status_code = 422
    code = "ID-0112"
