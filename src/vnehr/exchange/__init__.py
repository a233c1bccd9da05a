"""Exchange: outbox delivery to consumers (the BHXH portal first), with a record of every
attempt, backoff, ordering per key and dead letters."""

from vnehr.exchange.api import router
from vnehr.exchange.bhxh import BhxhClient, DeliveryFailed, PortalAnswer
from vnehr.exchange.notifications import (
    InboxPage,
    LogPush,
    PushAdapter,
    PushMessage,
    WebhookPush,
    event_notifier,
    facility_withheld,
    inbox,
    mark_all_read,
    mark_read,
    texts_of,
    visit_notifier,
)
from vnehr.exchange.retention import MIN_KEEP_DAYS, Pruned, prune
from vnehr.exchange.worker import (
    Consumers,
    Deferred,
    Handler,
    Policy,
    bhxh_consumer,
    checkin_consumer,
    dead_letters,
    deliver_once,
    depth,
    replay,
    run,
)

__all__ = [
    "MIN_KEEP_DAYS",
    "BhxhClient",
    "Consumers",
    "Deferred",
    "DeliveryFailed",
    "Handler",
    "InboxPage",
    "LogPush",
    "Policy",
    "PortalAnswer",
    "Pruned",
    "PushAdapter",
    "PushMessage",
    "WebhookPush",
    "bhxh_consumer",
    "checkin_consumer",
    "dead_letters",
    "deliver_once",
    "depth",
    "event_notifier",
    "facility_withheld",
    "inbox",
    "mark_all_read",
    "mark_read",
    "prune",
    "replay",
    "router",
    "run",
    "texts_of",
    "visit_notifier",
]
