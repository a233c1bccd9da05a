"""intake: submissions, visit versions, timeline, outbox, audit

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 23:06:20.806040
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "audit_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("object_type", sa.String(length=60), nullable=False),
        sa.Column("object_id", sa.String(length=200), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.Column("prev_hash", sa.String(length=64), nullable=True),
        sa.Column("hash", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_person", ["person_id", "at"], unique=False)

    op.create_table(
        "outbox_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("topic", sa.String(length=100), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_event")),
        sa.UniqueConstraint("event_id", name=op.f("uq_outbox_event_event_id")),
    )
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.create_index("ix_outbox_event_pending", ["delivered_at", "id"], unique=False)

    op.create_table(
        "submission",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("client_id", sa.String(length=80), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("test_mode", sa.Boolean(), nullable=False),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("raw_sha256", sa.String(length=64), nullable=False),
        sa.Column("raw_size", sa.Integer(), nullable=False),
        sa.Column("raw_zstd", sa.LargeBinary(), nullable=False),
        sa.Column(
            "receipt", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_submission")),
    )
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.create_index(
            "ix_submission_facility_received", ["facility_code", "received_at"], unique=False
        )

    op.create_table(
        "visit_version",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("visit_key", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("current", sa.Boolean(), nullable=False),
        sa.Column("test_mode", sa.Boolean(), nullable=False),
        sa.Column("submission_id", sa.String(length=36), nullable=False),
        sa.Column("content_sha256", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("personal_id", sa.String(length=15), nullable=True),
        sa.Column("care_type", sa.String(length=2), nullable=True),
        sa.Column("insured", sa.Boolean(), nullable=False),
        sa.Column("main_diagnosis", sa.String(length=10), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lag_seconds", sa.BigInteger(), nullable=True),
        sa.Column("total_hospital_cost", sa.Numeric(precision=18, scale=2), nullable=True),
        sa.Column("has_summary", sa.Boolean(), nullable=False),
        sa.Column(
            "tables", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column(
            "warnings", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_visit_version")),
        sa.UniqueConstraint(
            "facility_code",
            "visit_key",
            "version",
            name=op.f("uq_visit_version_facility_code_visit_key_version"),
        ),
    )
    with op.batch_alter_table("visit_version", schema=None) as batch_op:
        batch_op.create_index(
            "ix_visit_version_current", ["facility_code", "visit_key", "current"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_visit_version_person_id"), ["person_id"], unique=False)
        batch_op.create_index("ix_visit_version_received", ["received_at"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_visit_version_submission_id"), ["submission_id"], unique=False
        )

    op.create_table(
        "timeline_entry",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("visit_key", sa.String(length=100), nullable=False),
        sa.Column(
            "version_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("care_type", sa.String(length=2), nullable=True),
        sa.Column("main_diagnosis", sa.String(length=10), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["visit_version.id"],
            name=op.f("fk_timeline_entry_version_id_visit_version"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_timeline_entry")),
        sa.UniqueConstraint(
            "facility_code", "visit_key", name=op.f("uq_timeline_entry_facility_code_visit_key")
        ),
    )
    with op.batch_alter_table("timeline_entry", schema=None) as batch_op:
        batch_op.create_index("ix_timeline_entry_person", ["person_id", "ended_at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("timeline_entry", schema=None) as batch_op:
        batch_op.drop_index("ix_timeline_entry_person")

    op.drop_table("timeline_entry")
    with op.batch_alter_table("visit_version", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_visit_version_submission_id"))
        batch_op.drop_index("ix_visit_version_received")
        batch_op.drop_index(batch_op.f("ix_visit_version_person_id"))
        batch_op.drop_index("ix_visit_version_current")

    op.drop_table("visit_version")
    with op.batch_alter_table("submission", schema=None) as batch_op:
        batch_op.drop_index("ix_submission_facility_received")

    op.drop_table("submission")
    with op.batch_alter_table("outbox_event", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_event_pending")

    op.drop_table("outbox_event")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_person")

    op.drop_table("audit_event")
