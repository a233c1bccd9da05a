"""One error base with an HTTP status and a stable code; every context derives its errors here.

The JSON body of every error is ``{"code", "message": {"vi", "en"}, "detail"}``; the texts come
from the message catalogues (``vnehr/locale/*.toml``) keyed by the code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from vnehr.kit.i18n import LANGUAGES, Language, catalogue, text

_CODE = re.compile(r"^[A-Z]{2,5}-\d{4}$")

#: Every error class by its code; a test checks each one has text in every language.
REGISTRY: dict[str, type[VnehrError]] = {}


class VnehrError(Exception):
    """Base of every error a caller may see. Subclasses set ``status_code`` and ``code``."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "KIT-0000"
    #: Parameters that hold a name of ours (a state, ``"trained"``) said in words in the text:
    #: parameter -> message key prefix (``"status": "web.department.state"``); a value with
    #: no text is said as it is. ``detail`` keeps the name, for machines.
    worded: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "code" not in cls.__dict__:
            return  # an abstract grouping class that shares a status
        if not _CODE.match(cls.code):
            raise TypeError(f"{cls.__name__}: error code {cls.code!r} is not like 'CAT-0001'")
        if cls.code in REGISTRY and REGISTRY[cls.code] is not cls:
            raise TypeError(f"{cls.__name__}: code {cls.code} already used by {REGISTRY[cls.code]}")
        REGISTRY[cls.code] = cls

    def __init__(self, detail: Mapping[str, Any] | None = None, **params: Any) -> None:
        self.params = params
        self.detail: dict[str, Any] = {**params, **(detail or {})}
        super().__init__(f"{self.code}: {self.messages()['en']}")

    def shown(self, language: Language) -> dict[str, Any]:
        """The parameters as the text in ``language`` says them."""
        if not self.worded:
            return self.params
        said = dict(self.params)
        for name, prefix in self.worded.items():
            key = f"{prefix}.{said.get(name)}"
            if key in catalogue(language):
                said[name] = text(key, language)
        return said

    def messages(self) -> dict[str, str]:
        return {language: text(self.code, language, self.shown(language)) for language in LANGUAGES}

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.messages(), "detail": self.detail}


class BadRequest(VnehrError):
    status_code = 400
    code = "KIT-0400"


class NotFound(VnehrError):
    status_code = 404
    code = "KIT-0404"


class MethodNotAllowed(VnehrError):
    status_code = 405
    code = "KIT-0405"


class BodyTooLarge(VnehrError):
    status_code = 413
    code = "KIT-0413"


class RequestInvalid(VnehrError):
    status_code = 422
    code = "KIT-0422"


class InternalError(VnehrError):
    status_code = 500
    code = "KIT-0500"


class NotReady(VnehrError):
    status_code = 503
    code = "KIT-0503"


class InvalidCursor(VnehrError):
    status_code = 400
    code = "KIT-0001"


class ControlCharacter(VnehrError):
    """A control character (NUL above all) in a request's path, query or text body: refused
    before any route runs, since no text column stores NUL (PostgreSQL) and none belongs in
    an address."""

    status_code = 400
    code = "KIT-0002"


class DatabaseUnreachable(VnehrError):
    """``vnehr serve`` and ``vnehr worker`` cannot reach their database, or it refuses them:
    they do not start (D76's rule for the other commands, with a code)."""

    status_code = 503
    code = "KIT-0003"


class DatabaseNotSetUp(VnehrError):
    """No database where the settings point (a SQLite file not there), or one never
    migrated: ``vnehr db upgrade`` makes it."""

    status_code = 503
    code = "KIT-0004"


class SchemaNotCurrent(VnehrError):
    """The database's schema is not at this version's newest migration."""

    status_code = 503
    code = "KIT-0005"


class DatabaseDriverUnsupported(VnehrError):
    """The database URL names a driver vnehr does not use (``postgresql://`` is psycopg to
    SQLAlchemy, ``mysql://``, a synchronous ``sqlite://``): said before anything connects."""

    status_code = 503
    code = "KIT-0007"


class DatabaseUnavailable(VnehrError):
    """The database went away while the service runs (refused, reset, shutting down, its disk
    gone): the request is refused whole, to be retried after ``Retry-After`` (D101)."""

    status_code = 503
    code = "KIT-0008"


class OptionOutOfRange(VnehrError):
    """A command's option is outside what the matching setting accepts (``vnehr serve
    --port 0``): refused, not read as "not given" or passed on to fail later."""

    status_code = 400
    code = "KIT-0006"


class SchemaOfLaterRelease(VnehrError):
    """``vnehr db upgrade`` or ``downgrade`` on a database a later release migrated (D119):
    this release does not have that release's migrations, so it cannot move the schema either
    way; the later release's ``vnehr db`` does. Nothing is changed."""

    status_code = 409
    code = "KIT-0009"
