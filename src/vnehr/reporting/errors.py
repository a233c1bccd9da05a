"""Errors of the reports (texts in vnehr/locale)."""

from __future__ import annotations

from vnehr.kit.errors import VnehrError


class BadPeriod(VnehrError):
    status_code = 422
    code = "REP-0001"


class BadCategory(VnehrError):
    status_code = 422
    code = "REP-0002"


class BadPopulation(VnehrError):
    status_code = 422
    code = "REP-0003"


class BadProvince(VnehrError):
    status_code = 422
    code = "REP-0004"


class UnknownPopulationWard(VnehrError):
    status_code = 422
    code = "REP-0005"


class BadPopulationDate(VnehrError):
    status_code = 422
    code = "REP-0006"
