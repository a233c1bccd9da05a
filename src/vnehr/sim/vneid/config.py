"""Configuration of the simulated VNeID provider: issuer, registered clients, faults, clock."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from joserfc.jwk import ECKey

from vnehr.kit.clock import utcnow
from vnehr.sim.vneid.citizens import DEMO_CITIZENS, DemoCitizen


@dataclass(frozen=True, slots=True)
class ClientReg:
    """A relying party registered with the provider (as vnehr is with the real VNeID).

    ``redirect_uris`` are compared exactly, character for character (RFC 6749 §3.1.2.3 and
    OIDC Core §3.1.2.1): no prefix or wildcard matching, as a real provider must do.
    """

    secret: str
    redirect_uris: tuple[str, ...]
    name: str = ""

    def __post_init__(self) -> None:
        # Accept a list from callers without letting it be mutated behind our back.
        object.__setattr__(self, "redirect_uris", tuple(self.redirect_uris))
        if not self.secret:
            raise ValueError("a client secret must not be empty")
        if not self.redirect_uris:
            raise ValueError("a client needs at least one redirect URI")


@dataclass(slots=True)
class Faults:
    """Failures to inject, changed at runtime by tests and demos (``PUT /_sim/faults``).

    - ``token_error``: ``/token`` answers this OAuth error code (e.g. ``invalid_grant``,
      ``server_error``) without looking at the request; the code stays usable.
    - ``token_delay_seconds``: ``/token`` waits this long before answering (timeouts).
    - ``authorize_error``: ``POST /authorize`` redirects back with this error code
      (e.g. ``temporarily_unavailable``) instead of a code.
    - ``bad_signature``: ID tokens are signed by a key that is not in the JWKS (same ``kid``).
    - ``expired_id_token``: ID tokens are already expired when issued.
    - ``wrong_audience``: ID tokens name another client in ``aud``.
    - ``wrong_issuer``: ID tokens name another issuer in ``iss``.
    - ``wrong_nonce``: ID tokens carry a nonce other than the one the client sent.
    - ``unavailable``: every endpoint except ``/_sim/faults`` answers 503.
    - ``push_no_phone``: personal IDs with no phone registered with the app: a push to one
      answers 404 ``{"error": "recipient_unknown"}``, the one answer vnehr takes as about
      the recipient (a push naming no personal ID answers 400 ``{"error": "no recipient"}``).
    - ``push_status``: every push answers this HTTP status (e.g. 503: the push service is down).
    """

    token_error: str | None = None
    token_delay_seconds: float = 0.0
    authorize_error: str | None = None
    bad_signature: bool = False
    expired_id_token: bool = False
    wrong_audience: bool = False
    wrong_issuer: bool = False
    wrong_nonce: bool = False
    unavailable: bool = False
    push_no_phone: list[str] = field(default_factory=list)
    push_status: int | None = None


@dataclass(slots=True)
class VneidConfig:
    """Everything one simulated provider needs; state (codes, tokens) lives in the app.

    ``issuer`` is the full URL where the app is mounted, e.g.
    ``http://127.0.0.1:8000/sim/vneid``; every endpoint URL in discovery derives from it.
    ``signing_key`` is an EC P-256 private key; when absent one is generated per app, so ID
    tokens from an earlier process no longer verify (as after a real key rotation).
    ``subject_secret`` keys the HMAC that turns a personal id into the opaque ``sub``: keep it
    fixed so a citizen keeps the same ``sub`` across restarts of the development server.
    ``clock`` returns the current time (aware, UTC); tests pass their own to expire codes.
    """

    issuer: str
    clients: dict[str, ClientReg]
    citizens: Sequence[DemoCitizen] = DEMO_CITIZENS
    signing_key: ECKey | None = None
    code_ttl_seconds: int = 60
    token_ttl_seconds: int = 300
    faults: Faults = field(default_factory=Faults)
    subject_secret: str = "vnehr-sim-vneid-subject-v1"  # noqa: S105 - simulator, not a secret
    #: Key of the signature on pushed messages (None: pushes are refused).
    push_secret: str | None = None
    clock: Callable[[], datetime] = utcnow
