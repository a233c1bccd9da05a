"""Exchange: outbox delivery to consumers (the BHXH portal first), with a record of every
attempt, backoff, ordering per key and dead letters."""

from vnehr.exchange.bhxh import BhxhClient, DeliveryFailed, PortalAnswer
from vnehr.exchange.worker import (
    Handler,
    Policy,
    bhxh_consumer,
    dead_letters,
    deliver_once,
    depth,
    replay,
    run,
)

__all__ = [
    "BhxhClient",
    "DeliveryFailed",
    "Handler",
    "Policy",
    "PortalAnswer",
    "bhxh_consumer",
    "dead_letters",
    "deliver_once",
    "depth",
    "replay",
    "run",
]
