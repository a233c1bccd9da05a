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


class RepresentsSelf(VnehrError):
    """A person recorded as their own representative (the ward office's form). No params."""

    status_code = 422
    code = "ID-0113"


class ParentOfAdult(VnehrError):
    """A parent recorded for a person of age, whom a parent no longer represents (Civil Code
    2015 Art. 136; a guardian a court appoints does, Art. 47, 53). Params: name, adult_on."""

    status_code = 422
    code = "ID-0114"


class RegistrarAsAgent(VnehrError):
    """The registrar recording a representative named as the agent: nobody records themselves
    as someone's representative (another registrar does it). No params."""

    status_code = 403
    code = "ID-0115"


class GuardianFromChildhood(VnehrError):
    """A guardianship that began before the person's majority, for a person of age by the later
    of its start and today: it ended at their majority (Civil Code 2015 Art. 62), so it would
    represent nobody. Params: name, adult_on."""

    status_code = 422
    code = "ID-0116"


class AdultGuardianByDepartment(VnehrError):
    """A guardian for an adult (a court's appointment) recorded by a ward office: only the
    health department records it. No params."""

    status_code = 403
    code = "ID-0117"


class FirstResidenceByDepartment(VnehrError):
    """A first residence for a person with none on record, by a ward office: only the health
    department records it (D24). No params (the refusal names nobody)."""

    status_code = 403
    code = "ID-0118"


class EnrolmentNotTheRecord(VnehrError):
    """An assisted enrolment of a person on record with no residence, whose name or birth date
    typed is not the record's: the office does not give them its ward. Params: personal_id."""

    status_code = 422
    code = "ID-0119"


class UnknownLink(VnehrError):
    """A representation link that does not exist, or that the caller may not see (the person
    it represents lives outside their area): not told apart. Params: link."""

    status_code = 404
    code = "ID-0120"


class EndInPast(VnehrError):
    """A link ended from a day before today: reads made as its agent until now stay lawful, so
    history is not rewritten. Params: ends_on, today."""

    status_code = 422
    code = "ID-0121"


class AlreadyEnded(VnehrError):
    """A link that already ends before the day given (by its end recorded, or at the person's
    majority). Params: link, last_day (its last day in force)."""

    status_code = 409
    code = "ID-0122"


class EndReasonInvalid(VnehrError):
    """A link ended without a reason, or with one too long. Params: length, max_length."""

    status_code = 422
    code = "ID-0123"


class NotRepresented(VnehrError):
    """A person the caller does not represent today (as the health book refuses, HB-0002).
    Params: personal_id."""

    status_code = 403
    code = "ID-0124"


class OwnLink(VnehrError):
    """A registrar ending a link in which they are the agent or the person represented:
    another registrar does it. No params."""

    status_code = 403
    code = "ID-0125"


class MotherTooYoung(VnehrError):
    """A newborn's birth date at which the woman named as the mother would have been younger
    than ``MIN_MOTHER_AGE`` years: her ID or the date was mistyped."""

    status_code = 422
    code = "ID-0126"
