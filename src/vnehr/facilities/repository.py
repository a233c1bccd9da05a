"""All SQL of the facilities context."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    bindparam,
    delete,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from vnehr.facilities.models import (
    RECEIVES,
    ApiClient,
    Facility,
    FacilityCertificate,
    FacilityCodeCounter,
    OnboardingEvent,
    Practitioner,
    PractitionerRole,
    UsedAssertion,
)
from vnehr.kit.db import hot_fetch, insert_for
from vnehr.kit.text import fold

#: Rows read at a time when a name search filters them (names are folded in Python).
SEARCH_CHUNK = 500


_STATE_AND_CERTIFICATES = (
    select(
        Facility.status,
        FacilityCertificate.pem,
        FacilityCertificate.not_before,
        FacilityCertificate.not_after,
        FacilityCertificate.status,
    )
    .outerjoin(FacilityCertificate, FacilityCertificate.facility_code == Facility.code)
    .where(Facility.code == bindparam("code"))
)
_NAME = select(Facility.name).where(Facility.code == bindparam("code"))
#: A client's status and its facility's onboarding state, by the client's primary key: read on
#: every bearer request (a few seconds' copy kept).
CLIENT_STATUS = (
    select(ApiClient.status, Facility.status)
    .outerjoin(Facility, Facility.code == ApiClient.facility_code)
    .where(ApiClient.client_id == bindparam("client_id"))
)


class FacilityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # ------------------------------------------------------------ codes

    async def next_sequence(self, province_code: str) -> int:
        """Take the next sequence number of a province. The row lock (PostgreSQL) or the write
        lock (SQLite ``BEGIN IMMEDIATE``) makes concurrent issuers wait for each other."""
        insert = insert_for(self.session)
        await self.session.execute(
            insert(FacilityCodeCounter)
            .values(province_code=province_code, last_sequence=0)
            .on_conflict_do_nothing(index_elements=["province_code"])
        )
        result = await self.session.execute(
            update(FacilityCodeCounter)
            .where(FacilityCodeCounter.province_code == province_code)
            .values(last_sequence=FacilityCodeCounter.last_sequence + 1)
            .returning(FacilityCodeCounter.last_sequence)
        )
        return int(result.scalar_one())

    # ------------------------------------------------------------ facilities

    async def get(self, code: str, *, for_update: bool = False) -> Facility | None:
        stmt = select(Facility).where(Facility.code == code)
        if for_update:
            stmt = stmt.with_for_update()
        return (await self.session.scalars(stmt)).first()

    async def many(self, codes: Iterable[str]) -> list[Facility]:
        wanted = sorted(set(codes))
        if not wanted:
            return []
        return list(await self.session.scalars(select(Facility).where(Facility.code.in_(wanted))))

    @staticmethod
    def codes_query(province: str) -> Any:
        return select(Facility.code).where(Facility.province_code == province)

    async def of_province(self, province: str | None) -> list[Facility]:
        stmt = select(Facility).order_by(Facility.code)
        if province:
            stmt = stmt.where(Facility.province_code == province)
        return list(await self.session.scalars(stmt))

    async def practitioner_names(self, ids: Iterable[str]) -> dict[str, str]:
        wanted = sorted(set(ids))
        if not wanted:
            return {}
        rows = await self.session.execute(
            select(Practitioner.practitioner_id, Practitioner.full_name).where(
                Practitioner.practitioner_id.in_(wanted)
            )
        )
        return dict(rows.tuples())

    async def exists(self, code: str) -> bool:
        return (
            await self.session.scalar(select(Facility.code).where(Facility.code == code))
        ) is not None

    async def add(self, facility: Facility) -> None:
        self.session.add(facility)
        await self.session.flush()

    async def page(
        self,
        *,
        provinces: Sequence[str] | None,
        codes: Sequence[str] = (),
        province: str | None = None,
        status: str | None,
        query: str | None,
        after: str | None,
        limit: int,
    ) -> list[Facility]:
        """Facilities of ``provinces`` (None: every province) or with one of ``codes``, in code
        order after ``after``. ``query`` matches the start of the code or any part of the name,
        ignoring case and diacritics ("benh vien" finds "BỆNH VIỆN"). SQL ``lower()`` folds
        only ASCII on SQLite (and under a C locale on PostgreSQL), so names are folded here."""
        conditions: list[ColumnElement[bool]] = []
        if provinces is not None:
            conditions.append(or_(Facility.province_code.in_(provinces), Facility.code.in_(codes)))
        if province is not None:
            conditions.append(Facility.province_code == province)
        if status:
            conditions.append(Facility.status == status)
        if not query:
            if after:
                conditions.append(Facility.code > after)
            stmt = select(Facility).where(*conditions).order_by(Facility.code).limit(limit)
            return list(await self.session.scalars(stmt))
        wanted, prefix = fold(query), query.strip()
        found: list[str] = []
        while len(found) < limit:
            names = select(Facility.code, Facility.name).where(*conditions)
            if after:
                names = names.where(Facility.code > after)
            rows = (
                await self.session.execute(names.order_by(Facility.code).limit(SEARCH_CHUNK))
            ).all()
            found += [c for c, name in rows if c.startswith(prefix) or wanted in fold(name)]
            if len(rows) < SEARCH_CHUNK:
                break
            after = rows[-1].code
        if not found:
            return []
        chosen = select(Facility).where(Facility.code.in_(found[:limit])).order_by(Facility.code)
        return list(await self.session.scalars(chosen))

    @staticmethod
    def receivers_query(words: Sequence[str], limit: int) -> Select[Facility]:
        """Facilities that receive records whose search key has each of ``words`` (folded
        letters and digits) at the start of one of its words, by name. The state is written
        out, not bound, so that both databases see the partial index's condition; the words
        need no escaping (letters and digits only)."""
        stmt = select(Facility).where(text(RECEIVES))
        for word in words:
            stmt = stmt.where(Facility.search_key.like(f"% {word}%"))
        return stmt.order_by(Facility.name, Facility.code).limit(limit)

    async def receivers(self, words: Sequence[str], limit: int) -> list[Facility]:
        return list(await self.session.scalars(self.receivers_query(words, limit)))

    async def search_sources(self) -> list[Any]:
        """Every facility's code, name, address, ward, province and search key, by code."""
        stmt = select(
            Facility.code,
            Facility.name,
            Facility.address,
            Facility.ward_code,
            Facility.province_code,
            Facility.search_key,
        ).order_by(Facility.code)
        return list((await self.session.execute(stmt)).all())

    async def set_search_keys(self, keys: dict[str, str]) -> None:
        """Store each facility's (by code) new search key, in one statement sent many times."""
        if not keys:
            return
        stmt = update(Facility).where(Facility.code == bindparam("code_"))
        # on the connection: a plain UPDATE sent once per row, not the ORM's bulk by key
        connection = await self.session.connection()
        await connection.execute(
            stmt.values(search_key=bindparam("key_")),
            [{"code_": code, "key_": key} for code, key in keys.items()],
        )

    async def status_counts(self, provinces: Sequence[str] | None) -> dict[str, int]:
        stmt = select(Facility.status, func.count()).group_by(Facility.status)
        if provinces is not None:
            stmt = stmt.where(Facility.province_code.in_(provinces))
        return {status: int(n) for status, n in await self.session.execute(stmt)}

    async def add_event(self, event: OnboardingEvent) -> None:
        self.session.add(event)
        await self.session.flush()

    async def states_before(self, province: str | None, moment: datetime) -> dict[str, str]:
        """Each facility's last onboarding state reached before ``moment`` (the facilities of a
        province, or all); facilities registered later are not in it."""
        stmt = (
            select(OnboardingEvent.facility_code, OnboardingEvent.to_state)
            .join(Facility, Facility.code == OnboardingEvent.facility_code)
            .where(OnboardingEvent.at < moment, Facility.created_at < moment)
            .order_by(OnboardingEvent.id)
        )
        if province:
            stmt = stmt.where(Facility.province_code == province)
        return {row.facility_code: row.to_state for row in await self.session.execute(stmt)}

    async def events(self, code: str) -> list[OnboardingEvent]:
        stmt = (
            select(OnboardingEvent)
            .where(OnboardingEvent.facility_code == code)
            .order_by(OnboardingEvent.id)
        )
        return list(await self.session.scalars(stmt))

    # ------------------------------------------------------------ practitioners

    async def practitioner(self, practitioner_id: str) -> Practitioner | None:
        stmt = select(Practitioner).where(Practitioner.practitioner_id == practitioner_id)
        return (await self.session.scalars(stmt)).first()

    async def add_practitioner(self, practitioner: Practitioner, role: PractitionerRole) -> None:
        self.session.add(practitioner)
        await self.session.flush()
        role.practitioner_id = practitioner.id
        self.session.add(role)
        await self.session.flush()

    async def add_role(self, role: PractitionerRole) -> None:
        self.session.add(role)
        await self.session.flush()

    async def practitioners_at(self, code: str) -> list[tuple[Practitioner, PractitionerRole]]:
        rows = await self.session.execute(
            select(Practitioner, PractitionerRole)
            .join(PractitionerRole, PractitionerRole.practitioner_id == Practitioner.id)
            .where(PractitionerRole.facility_code == code)
            .order_by(Practitioner.full_name)
        )
        return [(row[0], row[1]) for row in rows]

    # ------------------------------------------------------------ clients

    async def client(self, client_id: str) -> ApiClient | None:
        return await self.session.get(ApiClient, client_id)

    async def clients_of(self, code: str) -> list[ApiClient]:
        stmt = select(ApiClient).where(ApiClient.facility_code == code).order_by(ApiClient.name)
        return list(await self.session.scalars(stmt))

    async def count_clients(self, code: str) -> int:
        stmt = select(func.count()).where(ApiClient.facility_code == code)
        return int(await self.session.scalar(stmt) or 0)

    async def add_client(self, client: ApiClient) -> None:
        self.session.add(client)
        await self.session.flush()

    async def remember_assertion(self, client_id: str, jti: str, expires_at: datetime) -> bool:
        """Record a used assertion id; False if it was used before (a replay)."""
        insert = insert_for(self.session)
        result = await self.session.execute(
            insert(UsedAssertion)
            .values(client_id=client_id, jti=jti, expires_at=expires_at)
            .on_conflict_do_nothing(index_elements=["client_id", "jti"])
            .returning(UsedAssertion.jti)
        )
        return result.first() is not None

    async def forget_assertions_before(self, moment: datetime) -> None:
        await self.session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < moment))

    # ------------------------------------------------------------ certificates

    async def certificate_by_fingerprint(self, fingerprint: str) -> FacilityCertificate | None:
        stmt = select(FacilityCertificate).where(
            FacilityCertificate.fingerprint_sha256 == fingerprint
        )
        return (await self.session.scalars(stmt)).first()

    async def state_and_certificates(
        self, code: str
    ) -> list[tuple[str, str | None, datetime | None, datetime | None, str | None]]:
        """The facility's status with each certificate it ever registered, revoked and expired
        ones too (one query; a row with no certificate when it has none; no rows for an
        unknown facility): (status, pem, not before, not after, certificate status)."""
        rows = await hot_fetch(self.session, _STATE_AND_CERTIFICATES, {"code": code})
        return [(r[0], r[1], r[2], r[3], r[4]) for r in rows]

    async def name_of(self, code: str) -> str | None:
        """A facility's registered name (one prebuilt statement: papers of every batch)."""
        rows = await hot_fetch(self.session, _NAME, {"code": code})
        return str(rows[0][0]) if rows else None

    async def has_usable_certificate(self, code: str, moment: datetime) -> bool:
        """Whether the facility has a certificate that is active and valid at ``moment``."""
        stmt = select(FacilityCertificate.id).where(
            FacilityCertificate.facility_code == code,
            FacilityCertificate.status == "active",
            FacilityCertificate.not_before <= moment,
            FacilityCertificate.not_after > moment,
        )
        return (await self.session.scalar(stmt.limit(1))) is not None

    async def certificates_of(self, code: str) -> list[FacilityCertificate]:
        stmt = (
            select(FacilityCertificate)
            .where(FacilityCertificate.facility_code == code)
            .order_by(FacilityCertificate.id)
        )
        return list(await self.session.scalars(stmt))

    async def add_certificate(self, certificate: FacilityCertificate) -> None:
        self.session.add(certificate)
        await self.session.flush()


def as_dict(model: Any) -> dict[str, Any]:
    return {c.key: getattr(model, c.key) for c in model.__table__.columns}
