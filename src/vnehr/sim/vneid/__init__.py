"""Simulated VNeID: a small but real OpenID Connect provider for development and tests.

Mount it in the development app (the lead's composition root decides where)::

    from vnehr.sim.vneid import ClientReg, VneidConfig, create_app

    app.mount(
        "/sim/vneid",
        create_app(
            VneidConfig(
                issuer="http://127.0.0.1:8000/sim/vneid",
                clients={"vnehr": ClientReg("dev-secret", ("http://127.0.0.1:8000/auth/callback",))},
            )
        ),
    )

Then discovery is at ``{issuer}/.well-known/openid-configuration``. Product code never
imports this package; only composition roots and tests do.
"""

from vnehr.sim.vneid.citizens import DEMO_CITIZENS, DemoCitizen, personal_id_problems
from vnehr.sim.vneid.config import ClientReg, Faults, VneidConfig
from vnehr.sim.vneid.keys import new_signing_key
from vnehr.sim.vneid.protocol import s256
from vnehr.sim.vneid.provider import create_app

__all__ = [
    "DEMO_CITIZENS",
    "ClientReg",
    "DemoCitizen",
    "Faults",
    "VneidConfig",
    "create_app",
    "new_signing_key",
    "personal_id_problems",
    "s256",
]
