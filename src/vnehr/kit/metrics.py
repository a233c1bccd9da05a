"""Prometheus metrics of one process. With several uvicorn workers each process answers for
itself; scrape them all (or run one worker per container)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

HTTP_SECONDS = Histogram(
    "vnehr_http_request_seconds",
    "Time to answer an HTTP request",
    ["method", "route", "status"],
    registry=REGISTRY,
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INTAKE_VISITS = Counter(
    "vnehr_intake_visits_total", "Visits received, by outcome", ["status"], registry=REGISTRY
)
INTAKE_FILES = Counter(
    "vnehr_intake_files_total", "Visit files received, by status", ["status"], registry=REGISTRY
)
DELIVERY_ATTEMPTS = Counter(
    "vnehr_delivery_attempts_total",
    "Outbox delivery attempts, by topic and outcome",
    ["topic", "outcome"],
    registry=REGISTRY,
)
OUTBOX_EVENTS = Gauge(
    "vnehr_outbox_events", "Outbox events by status (at scrape time)", ["status"], registry=REGISTRY
)
OUTBOX_LAG = Gauge(
    "vnehr_outbox_oldest_pending_seconds",
    "Age of the oldest undelivered outbox event (delivery lag)",
    registry=REGISTRY,
)


def render() -> bytes:
    data: bytes = generate_latest(REGISTRY)
    return data
