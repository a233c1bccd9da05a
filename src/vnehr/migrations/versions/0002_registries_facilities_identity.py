"""registries: facilities, identity

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 22:43:53.083520
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_client_used_assertion",
        sa.Column("client_id", sa.String(length=80), nullable=False),
        sa.Column("jti", sa.String(length=200), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name=op.f("pk_api_client_used_assertion")),
    )
    with op.batch_alter_table("api_client_used_assertion", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_client_used_assertion_expires_at"), ["expires_at"], unique=False
        )

    op.create_table(
        "facility",
        sa.Column("code", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=300), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("level", sa.String(length=40), nullable=False),
        sa.Column("ownership", sa.String(length=10), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=True),
        sa.Column("ward_code", sa.String(length=5), nullable=True),
        sa.Column("province_code", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=30), nullable=False),
        sa.Column("status_before_suspension", sa.String(length=30), nullable=True),
        sa.Column("issued", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_facility")),
    )
    with op.batch_alter_table("facility", schema=None) as batch_op:
        batch_op.create_index(
            "ix_facility_province_status", ["province_code", "status"], unique=False
        )

    op.create_table(
        "facility_code_counter",
        sa.Column("province_code", sa.String(length=2), nullable=False),
        sa.Column("last_sequence", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("province_code", name=op.f("pk_facility_code_counter")),
    )
    op.create_table(
        "person",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("personal_id", sa.String(length=12), nullable=True),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("birth_date", sa.Date(), nullable=True),
        sa.Column("sex", sa.String(length=10), nullable=True),
        sa.Column("provisional", sa.Boolean(), nullable=False),
        sa.Column("mother_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column(
            "merged_into_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("vneid_sub", sa.String(length=200), nullable=True),
        sa.Column("last_sign_in_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_assurance_level", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["merged_into_id"], ["person.id"], name=op.f("fk_person_merged_into_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["mother_id"], ["person.id"], name=op.f("fk_person_mother_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_person")),
        sa.UniqueConstraint("personal_id", name=op.f("uq_person_personal_id")),
        sa.UniqueConstraint("vneid_sub", name=op.f("uq_person_vneid_sub")),
    )
    op.create_table(
        "practitioner",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("practitioner_id", sa.String(length=60), nullable=False),
        sa.Column("personal_id", sa.String(length=12), nullable=True),
        sa.Column("full_name", sa.String(length=200), nullable=False),
        sa.Column("title", sa.String(length=100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioner")),
        sa.UniqueConstraint("practitioner_id", name=op.f("uq_practitioner_practitioner_id")),
    )
    with op.batch_alter_table("practitioner", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_practitioner_personal_id"), ["personal_id"], unique=False
        )

    op.create_table(
        "role_grant",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("personal_id", sa.String(length=12), nullable=False),
        sa.Column("role", sa.String(length=30), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=True),
        sa.Column("province_code", sa.String(length=2), nullable=True),
        sa.Column("ward_code", sa.String(length=5), nullable=True),
        sa.Column("granted_by", sa.String(length=60), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", sa.String(length=60), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_role_grant")),
    )
    with op.batch_alter_table("role_grant", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_role_grant_facility_code"), ["facility_code"], unique=False
        )
        batch_op.create_index("ix_role_grant_person", ["personal_id", "revoked_at"], unique=False)

    op.create_table(
        "api_client",
        sa.Column("client_id", sa.String(length=80), nullable=False),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("jwks", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_code"], ["facility.code"], name=op.f("fk_api_client_facility_code_facility")
        ),
        sa.PrimaryKeyConstraint("client_id", name=op.f("pk_api_client")),
    )
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_api_client_facility_code"), ["facility_code"], unique=False
        )

    op.create_table(
        "facility_certificate",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("fingerprint_sha256", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("serial_number", sa.String(length=100), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("pem", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("registered_by", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_code"],
            ["facility.code"],
            name=op.f("fk_facility_certificate_facility_code_facility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facility_certificate")),
        sa.UniqueConstraint(
            "fingerprint_sha256", name=op.f("uq_facility_certificate_fingerprint_sha256")
        ),
    )
    with op.batch_alter_table("facility_certificate", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_facility_certificate_facility_code"), ["facility_code"], unique=False
        )

    op.create_table(
        "facility_onboarding_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("from_state", sa.String(length=30), nullable=True),
        sa.Column("to_state", sa.String(length=30), nullable=False),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["facility_code"],
            ["facility.code"],
            name=op.f("fk_facility_onboarding_event_facility_code_facility"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_facility_onboarding_event")),
    )
    with op.batch_alter_table("facility_onboarding_event", schema=None) as batch_op:
        batch_op.create_index(
            "ix_facility_onboarding_event_facility", ["facility_code", "id"], unique=False
        )

    op.create_table(
        "health_account",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("assisted_ward_code", sa.String(length=5), nullable=True),
        sa.Column("assisted_by", sa.String(length=60), nullable=True),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_health_account_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_account")),
        sa.UniqueConstraint("person_id", name=op.f("uq_health_account_person_id")),
    )
    with op.batch_alter_table("health_account", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_health_account_assisted_ward_code"), ["assisted_ward_code"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_health_account_opened_at"), ["opened_at"], unique=False
        )

    op.create_table(
        "insurance_card",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "person_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("card_number", sa.String(length=15), nullable=False),
        sa.Column("social_insurance_number", sa.String(length=10), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=True),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("registered_facility", sa.String(length=5), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("recorded_by", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["person_id"], ["person.id"], name=op.f("fk_insurance_card_person_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_insurance_card")),
    )
    with op.batch_alter_table("insurance_card", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_insurance_card_card_number"), ["card_number"], unique=False
        )
        batch_op.create_index("ix_insurance_card_person", ["person_id", "valid_from"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_insurance_card_social_insurance_number"),
            ["social_insurance_number"],
            unique=False,
        )

    op.create_table(
        "practitioner_role",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "practitioner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("facility_code", sa.String(length=5), nullable=False),
        sa.Column("role", sa.String(length=60), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["facility_code"],
            ["facility.code"],
            name=op.f("fk_practitioner_role_facility_code_facility"),
        ),
        sa.ForeignKeyConstraint(
            ["practitioner_id"],
            ["practitioner.id"],
            name=op.f("fk_practitioner_role_practitioner_id_practitioner"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_practitioner_role")),
        sa.UniqueConstraint(
            "practitioner_id",
            "facility_code",
            "valid_from",
            name=op.f("uq_practitioner_role_practitioner_id_facility_code_valid_from"),
        ),
    )
    with op.batch_alter_table("practitioner_role", schema=None) as batch_op:
        batch_op.create_index("ix_practitioner_role_facility", ["facility_code"], unique=False)

    op.create_table(
        "representative",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("agent_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "subject_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("relation", sa.String(length=20), nullable=False),
        sa.Column("valid_from", sa.Date(), nullable=False),
        sa.Column("valid_to", sa.Date(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=60), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"], ["person.id"], name=op.f("fk_representative_agent_id_person")
        ),
        sa.ForeignKeyConstraint(
            ["subject_id"], ["person.id"], name=op.f("fk_representative_subject_id_person")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_representative")),
    )
    with op.batch_alter_table("representative", schema=None) as batch_op:
        batch_op.create_index("ix_representative_agent", ["agent_id"], unique=False)
        batch_op.create_index("ix_representative_subject", ["subject_id"], unique=False)

    op.create_table(
        "health_account_event",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "account_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("ward_code", sa.String(length=5), nullable=True),
        sa.Column("actor", sa.String(length=60), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["health_account.id"],
            name=op.f("fk_health_account_event_account_id_health_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_health_account_event")),
    )
    with op.batch_alter_table("health_account_event", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_health_account_event_account_id"), ["account_id"], unique=False
        )
        batch_op.create_index("ix_health_account_event_at", ["at"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("health_account_event", schema=None) as batch_op:
        batch_op.drop_index("ix_health_account_event_at")
        batch_op.drop_index(batch_op.f("ix_health_account_event_account_id"))

    op.drop_table("health_account_event")
    with op.batch_alter_table("representative", schema=None) as batch_op:
        batch_op.drop_index("ix_representative_subject")
        batch_op.drop_index("ix_representative_agent")

    op.drop_table("representative")
    with op.batch_alter_table("practitioner_role", schema=None) as batch_op:
        batch_op.drop_index("ix_practitioner_role_facility")

    op.drop_table("practitioner_role")
    with op.batch_alter_table("insurance_card", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_insurance_card_social_insurance_number"))
        batch_op.drop_index("ix_insurance_card_person")
        batch_op.drop_index(batch_op.f("ix_insurance_card_card_number"))

    op.drop_table("insurance_card")
    with op.batch_alter_table("health_account", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_health_account_opened_at"))
        batch_op.drop_index(batch_op.f("ix_health_account_assisted_ward_code"))

    op.drop_table("health_account")
    with op.batch_alter_table("facility_onboarding_event", schema=None) as batch_op:
        batch_op.drop_index("ix_facility_onboarding_event_facility")

    op.drop_table("facility_onboarding_event")
    with op.batch_alter_table("facility_certificate", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_facility_certificate_facility_code"))

    op.drop_table("facility_certificate")
    with op.batch_alter_table("api_client", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_client_facility_code"))

    op.drop_table("api_client")
    with op.batch_alter_table("role_grant", schema=None) as batch_op:
        batch_op.drop_index("ix_role_grant_person")
        batch_op.drop_index(batch_op.f("ix_role_grant_facility_code"))

    op.drop_table("role_grant")
    with op.batch_alter_table("practitioner", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_practitioner_personal_id"))

    op.drop_table("practitioner")
    op.drop_table("person")
    op.drop_table("facility_code_counter")
    with op.batch_alter_table("facility", schema=None) as batch_op:
        batch_op.drop_index("ix_facility_province_status")

    op.drop_table("facility")
    with op.batch_alter_table("api_client_used_assertion", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_client_used_assertion_expires_at"))

    op.drop_table("api_client_used_assertion")
