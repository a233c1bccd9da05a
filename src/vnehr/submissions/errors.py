"""Errors of the submissions context. SUB-00xx refuse a whole file (an HTTP error); SUB-01xx are
issues of one visit, listed in the receipt (texts of both in vnehr/locale)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from vnehr.kit.errors import VnehrError
from vnehr.kit.i18n import Language, text
from vnehr.kit.numerals import number as number_of
from vnehr.kit.numerals import size as size_in_words

#: ``what`` values that are words, not names: each language says them in its own words
#: (``xml.what.*``); any other ``what`` is a name (a table, a path, a form's part) said as
#: "tệp XML1" / "file XML1".
_WORDS = frozenset({"request", "document", "file"})
#: Form fields the document may come in, named as fields ("trường fileHSBase64").
_FIELDS = frozenset({"fileHSBase64"})


def _named(what: str, language: Language) -> str:
    if what in _WORDS:
        return text(f"xml.what.{what}", language)
    key = "xml.what.field" if what in _FIELDS else "xml.what.named"
    return text(key, language, {"name": what})


class FileRefused(VnehrError):
    """The whole file is refused: nothing of it is stored. Its texts name the file (``what``)
    in the reader's words; ``detail`` keeps the values as given, for machines."""

    status_code = 422

    def shown(self, language: Language) -> dict[str, Any]:
        """The parameters as the text in ``language`` says them."""
        said = super().shown(language)
        what = self.params.get("what")
        if not isinstance(what, str):
            return said
        named = _named(what, language)
        return {**said, "what": named, "What": named[:1].upper() + named[1:]}


class TooLarge(FileRefused):
    """Over the size cap, said in MB or KB (the detail keeps the bytes)."""

    status_code = 413
    code = "SUB-0001"

    def shown(self, language: Language) -> dict[str, Any]:
        size, limit = int(self.params.get("size", 0)), int(self.params.get("limit", 0))
        over, cap = size_in_words(size, language), size_in_words(limit, language)
        if over == cap:  # (a little over: rounded, both would read alike)
            over, cap = (
                text("number.bytes", language, {"count": number_of(n, language)})
                for n in (size, limit)
            )
        return {**super().shown(language), "size": over, "limit": cap}


class NotWellFormed(FileRefused):
    code = "SUB-0002"


class DtdForbidden(FileRefused):
    code = "SUB-0003"


class WrongEncoding(FileRefused):
    code = "SUB-0004"


class WrongRoot(FileRefused):
    code = "SUB-0005"


class TooComplex(FileRefused):
    code = "SUB-0006"


class BadBase64(FileRefused):
    code = "SUB-0007"


class EnvelopeIncomplete(FileRefused):
    code = "SUB-0008"


class FacilityMismatch(FileRefused):
    status_code = 403
    code = "SUB-0009"


class FacilityNotAllowed(FileRefused):
    status_code = 403
    code = "SUB-0010"
    worded: ClassVar[Mapping[str, str]] = {"status": "web.department.state"}


class SignatureInvalid(FileRefused):
    code = "SUB-0011"


class SignatureMissing(FileRefused):
    code = "SUB-0012"


class SignatureUncheckable(FileRefused):
    """Signatures are required and the facility registered no certificate: no file of its,
    signed or not, can be vouched for."""

    code = "SUB-0021"


class NoVisits(FileRefused):
    code = "SUB-0013"


class TooManyVisits(FileRefused):
    """More HOSO in one file than ``Limits.max_visits``: each costs a check, a receipt line
    and rows in one transaction, so a small file of empty HOSO could hold a worker for a
    minute."""

    status_code = 413
    code = "SUB-0019"


class DeclaredCountMismatch(FileRefused):
    """SOLUONGHOSO says another number of HOSO than the file holds: a file that lost visits
    on the way (or gained some) is not taken as complete; the BHXH portal refuses it too."""

    code = "SUB-0022"


class FileUnreadable(FileRefused):
    status_code = 400
    code = "SUB-0020"


class EmptyBody(FileRefused):
    status_code = 400
    code = "SUB-0014"


class FormUnreadable(FileRefused):
    """A multipart form that cannot be read, or holds neither a file nor ``fileHSBase64``."""

    status_code = 400
    code = "SUB-0018"
    #: what is wrong, in words (``detail.reason`` keeps the name; a parser's own message, for
    #: a form it cannot read, is said as it is)
    worded: ClassVar[Mapping[str, str]] = {"reason": "sub.form"}


class UnknownSubmission(VnehrError):
    """No receipt of this id that the caller may read: none at all, or another facility's,
    answered alike (D172; SUB-0016, which said the latter, is retired and not reused)."""

    status_code = 404
    code = "SUB-0015"


class NotYourFacilityData(VnehrError):
    """A facility's receipts, awaited visits or stored visits asked for by someone who is not
    its administrator, its own system or its province's department."""

    status_code = 403
    code = "SUB-0023"


class SenderNotAFacilitySystem(VnehrError):
    """Visit data sent (or validated) by a person signed in, or by anything but a facility's
    own system: only the system's token sends."""

    status_code = 403
    code = "SUB-0024"


class FacilityNotNamed(VnehrError):
    """A listing asked for by a person (an administrator, the department) without
    ``?facility=``: only a facility's own system has a facility of its own to default to."""

    status_code = 422
    code = "SUB-0025"


class ReceiptsUnsure(VnehrError):
    """A listing cannot tell where the receipts still being written begin: a transaction
    writing them runs under a database role whose start this one may not read (D172)."""

    status_code = 503
    code = "SUB-0026"


class UnknownVisit(VnehrError):
    status_code = 404
    code = "SUB-0017"
