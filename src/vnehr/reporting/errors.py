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


class RebuildBusy(VnehrError):
    """PostgreSQL: the report's counters stayed locked by other writers (another rebuild,
    most likely) through every try of ``vnehr report rebuild``; nothing was changed (D163)."""

    status_code = 409
    code = "REP-0007"
