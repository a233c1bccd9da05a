"""Signing keys of the simulated provider: the published one and an impostor for faults."""

from __future__ import annotations

from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey

ALGORITHM = "ES256"
CURVE = "P-256"


def new_signing_key(kid: str | None = None) -> ECKey:
    """A fresh EC P-256 private key for ES256; ``kid`` defaults to its RFC 7638 thumbprint."""
    key = ECKey.generate_key(CURVE, parameters={"use": "sig", "alg": ALGORITHM}, private=True)
    return ECKey.import_key(key.as_dict(private=True), parameters={"kid": kid or key.thumbprint()})


class SigningKeys:
    """The key whose public half is in the JWKS, and an impostor with the same ``kid``.

    The impostor serves the ``bad_signature`` fault: a client that picks the JWKS key by
    ``kid`` (as it should) finds one, and only the signature check can catch the forgery.
    """

    def __init__(self, key: ECKey | None) -> None:
        if key is None:
            key = new_signing_key()
        if key.curve_name != CURVE or not key.is_private:
            raise ValueError(f"the signing key must be a private EC {CURVE} key for {ALGORITHM}")
        kid = key.kid or key.thumbprint()
        self.key = ECKey.import_key(
            key.as_dict(private=True), parameters={"kid": kid, "use": "sig", "alg": ALGORITHM}
        )
        self.kid = kid
        self.impostor = new_signing_key(kid)

    def jwks(self) -> dict[str, list[dict[str, Any]]]:
        """The public key set served at ``/jwks`` (RFC 7517 §5), without private members."""
        public = dict(self.key.as_dict(private=False))
        public.update({"kid": self.kid, "use": "sig", "alg": ALGORITHM})
        return {"keys": [public]}

    def sign(self, claims: dict[str, Any], *, forged: bool = False) -> str:
        """A compact JWS of ``claims`` (``typ`` JWT, ``alg`` ES256, ``kid``)."""
        header = {"alg": ALGORITHM, "typ": "JWT", "kid": self.kid}
        return jwt.encode(header, claims, self.impostor if forged else self.key, [ALGORITHM])
