"""Errors of the catalogues context (codes CAT-xxxx; texts in vnehr/locale)."""

from vnehr.kit.errors import VnehrError


class UnknownCatalog(VnehrError):
    status_code = 404
    code = "CAT-0001"


class UnknownCode(VnehrError):
    status_code = 404
    code = "CAT-0002"


class CodeNotInForce(VnehrError):
    status_code = 404
    code = "CAT-0003"


class BadDate(VnehrError):
    status_code = 422
    code = "CAT-0004"


class TitlesFileInvalid(VnehrError):
    status_code = 422
    code = "CAT-0005"
