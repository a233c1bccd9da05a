"""All SQL of the identity context."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import bindparam, delete, or_, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from vnehr.identity.models import (
    AccountEvent,
    HealthAccount,
    InsuranceCard,
    Person,
    Representative,
    RoleGrant,
)
from vnehr.kit.db import hot_fetch, insert_for

_PERSON_ID = select(Person.id).where(Person.personal_id == bindparam("personal_id"))
#: The age of majority (Civil Code 2015 Art. 20): a parent's representation ends then.
MAJORITY = 18


def came_of_age(born: date) -> date:
    """The 18th birthday (one born on 29 February comes of age on 1 March)."""
    try:
        return born.replace(year=born.year + MAJORITY)
    except ValueError:
        return date(born.year + MAJORITY, 3, 1)


def represents(link: Representative, born: date | None, on: date) -> bool:
    """Whether a link in force by its dates still represents on ``on``: a parent's ends at the
    child's majority (Civil Code 2015 Art. 136: parents represent minor children), and so does
    a guardianship that began while the ward was a minor (Art. 62); a guardianship that began
    when the ward was already of age (a court's appointment for an adult, Art. 47, 53) lasts
    its recorded period. An unknown birth date leaves the recorded period alone."""
    if born is None or on < (adult := came_of_age(born)):
        return True
    return link.relation == "guardian" and link.valid_from >= adult


_NEW_PERSON_COLUMNS = (
    "personal_id", "full_name", "birth_date", "sex", "provisional", "created_at", "created_by",
)  # fmt: skip


def _new_person(make: Any) -> Any:
    table = Person.__table__
    return (
        make(table)
        .values({n: bindparam(f"p_{n}", type_=table.c[n].type) for n in _NEW_PERSON_COLUMNS})
        .on_conflict_do_nothing(index_elements=["personal_id"])
        .returning(table.c.id)
    )


_NEW_PERSON = {"postgresql": _new_person(pg_insert), "sqlite": _new_person(sqlite_insert)}
_NEW_PERSONS_PG = text(
    "INSERT INTO person (personal_id, full_name, birth_date, sex, provisional, created_at,"
    " created_by) SELECT p.personal_id, p.full_name, p.birth_date, p.sex, false, p.created_at,"
    " p.created_by FROM unnest(CAST(:personal_id AS text[]), CAST(:full_name AS text[]),"
    " CAST(:birth_date AS date[]), CAST(:sex AS text[]), CAST(:created_at AS timestamptz[]),"
    " CAST(:created_by AS text[])) AS p(personal_id, full_name, birth_date, sex, created_at,"
    " created_by) ON CONFLICT (personal_id) DO NOTHING"
)
_PERSON_IDS_PG = text(
    "SELECT personal_id, id FROM person WHERE personal_id = ANY(CAST(:ids AS text[]))"
)


class IdentityRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, row: object) -> None:
        self.session.add(row)
        await self.session.flush()

    @staticmethod
    def person_id_query(personal_id: Any) -> Any:
        return select(Person.id).where(Person.personal_id == personal_id).scalar_subquery()

    @staticmethod
    def residents_query(ward_codes: list[str]) -> Any:
        return select(Person.id).where(Person.residence_ward_code.in_(ward_codes))

    async def person_by_personal_id(self, personal_id: str) -> Person | None:
        stmt = select(Person).where(Person.personal_id == personal_id)
        return (await self.session.scalars(stmt)).first()

    async def person_by_vneid_sub(self, sub: str) -> Person | None:
        stmt = select(Person).where(Person.vneid_sub == sub)
        return (await self.session.scalars(stmt)).first()

    async def person_id_or_new(self, **values: Any) -> int:
        """The id of the person with ``values["personal_id"]``, inserting them if unknown (safe
        when two transactions meet the same new person: the second reads the first's row).
        The intake's hot path: prebuilt statements through ``hot_fetch``."""
        key = {"personal_id": values["personal_id"]}
        found = await hot_fetch(self.session, _PERSON_ID, key)
        if found:
            return int(found[0][0])
        dialect = self.session.get_bind().dialect.name
        params = {f"p_{name}": values.get(name) for name in _NEW_PERSON_COLUMNS}
        params["p_provisional"] = False
        created = await hot_fetch(self.session, _NEW_PERSON[dialect], params)
        if created:
            return int(created[0][0])
        return int((await hot_fetch(self.session, _PERSON_ID, key))[0][0])

    async def person_ids_or_new(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """``person_id_or_new`` for many distinct personal IDs: one multi-row insert of the
        unknown ones (the known left as they are), one read of every id."""
        if not rows:
            return {}
        if self.session.get_bind().dialect.name == "postgresql":
            return await self._person_ids_or_new_pg(rows)
        insert = insert_for(self.session)
        await self.session.execute(
            insert(Person)
            .values([{**row, "provisional": False} for row in rows])
            .on_conflict_do_nothing(index_elements=["personal_id"])
        )
        found = await self.session.execute(
            select(Person.personal_id, Person.id).where(
                Person.personal_id.in_([row["personal_id"] for row in rows])
            )
        )
        return {str(personal_id): int(person_id) for personal_id, person_id in found}

    async def _person_ids_or_new_pg(self, rows: list[dict[str, Any]]) -> dict[str, int]:
        """The same with the values as arrays: one statement text whatever the count."""
        columns = {name: [row[name] for row in rows] for name in _NEW_PERSON_COLUMNS[:-3]}
        columns["created_at"] = [row["created_at"] for row in rows]
        columns["created_by"] = [row["created_by"] for row in rows]
        await hot_fetch(self.session, _NEW_PERSONS_PG, columns)
        found = await hot_fetch(self.session, _PERSON_IDS_PG, {"ids": columns["personal_id"]})
        return {str(personal_id): int(person_id) for personal_id, person_id in found}

    async def person(self, person_id: int) -> Person | None:
        return await self.session.get(Person, person_id)

    async def persons(self, ids: list[int]) -> list[Person]:
        if not ids:
            return []
        stmt = select(Person).where(Person.id.in_(ids), Person.merged_into_id.is_(None))
        return list(await self.session.scalars(stmt))

    async def account_of(self, person_id: int) -> HealthAccount | None:
        stmt = select(HealthAccount).where(HealthAccount.person_id == person_id)
        return (await self.session.scalars(stmt)).first()

    async def account_events(self, account_id: int) -> list[AccountEvent]:
        stmt = (
            select(AccountEvent)
            .where(AccountEvent.account_id == account_id)
            .order_by(AccountEvent.id)
        )
        return list(await self.session.scalars(stmt))

    async def cards_of(self, person_id: int) -> list[InsuranceCard]:
        stmt = (
            select(InsuranceCard)
            .where(InsuranceCard.person_id == person_id)
            .order_by(InsuranceCard.valid_from.desc().nulls_last(), InsuranceCard.id.desc())
        )
        return list(await self.session.scalars(stmt))

    async def representing(self, agent_id: int, on: date) -> list[tuple[Representative, Person]]:
        """People ``agent_id`` may act for on ``on`` (a minor's parent no longer once the child
        is of age, ``represents``)."""
        rows = await self.session.execute(
            select(Representative, Person)
            .join(Person, Person.id == Representative.subject_id)
            .where(
                Representative.agent_id == agent_id,
                Representative.valid_from <= on,
                or_(Representative.valid_to.is_(None), Representative.valid_to >= on),
                Person.merged_into_id.is_(None),
            )
            .order_by(Person.full_name)
        )
        return [(row[0], row[1]) for row in rows if represents(row[0], row[1].birth_date, on)]

    async def representatives(
        self, subject_id: int, on: date
    ) -> list[tuple[Representative, Person]]:
        """Who may act for ``subject_id`` on ``on`` (each agent once, oldest link first; a
        minor's parent no longer once the child is of age, ``represents``)."""
        represented = aliased(Person)
        rows = await self.session.execute(
            select(Representative, Person, represented.birth_date)
            .join(Person, Person.id == Representative.agent_id)
            .join(represented, represented.id == Representative.subject_id)
            .where(
                Representative.subject_id == subject_id,
                Representative.valid_from <= on,
                or_(Representative.valid_to.is_(None), Representative.valid_to >= on),
                Person.merged_into_id.is_(None),
            )
            .order_by(Representative.id)
        )
        found: dict[int, tuple[Representative, Person]] = {}
        for row in rows:
            if represents(row[0], row[2], on):
                found.setdefault(row[1].id, (row[0], row[1]))
        return list(found.values())

    async def move_subject_links(self, old_id: int, new_id: int) -> None:
        """After a merge, links that pointed at the provisional person point at the real one;
        an agent who already represents the real person is not linked twice."""
        existing = select(Representative.agent_id).where(Representative.subject_id == new_id)
        await self.session.execute(
            delete(Representative).where(
                Representative.subject_id == old_id,
                Representative.agent_id.in_(existing.scalar_subquery()),
            )
        )
        await self.session.execute(
            update(Representative)
            .where(Representative.subject_id == old_id)
            .values(subject_id=new_id)
        )
        await self.session.execute(
            update(InsuranceCard).where(InsuranceCard.person_id == old_id).values(person_id=new_id)
        )

    async def active_grants(self, personal_id: str) -> list[RoleGrant]:
        stmt = select(RoleGrant).where(
            RoleGrant.personal_id == personal_id, RoleGrant.revoked_at.is_(None)
        )
        return list(await self.session.scalars(stmt.order_by(RoleGrant.id)))

    async def grant(self, grant_id: int) -> RoleGrant | None:
        return await self.session.get(RoleGrant, grant_id)

    async def grants_at_facility(self, facility_code: str) -> list[RoleGrant]:
        stmt = select(RoleGrant).where(
            RoleGrant.facility_code == facility_code, RoleGrant.revoked_at.is_(None)
        )
        return list(await self.session.scalars(stmt.order_by(RoleGrant.id)))

    async def account_holders(self, after: int | None, limit: int) -> list[tuple[int, str | None]]:
        """(account, its holder's residence today) of the next ``limit`` accounts after account
        ``after`` (from the first with None), in account order: a page of the reports' recount."""
        stmt = (
            select(HealthAccount.id, Person.residence_ward_code)
            .join(Person, Person.id == HealthAccount.person_id)
            .order_by(HealthAccount.id)
            .limit(limit)
        )
        if after is not None:
            stmt = stmt.where(HealthAccount.id > after)
        return [(account, home) for account, home in await self.session.execute(stmt)]

    async def account_histories(
        self, after: int | None, last: int, before: datetime
    ) -> list[tuple[int, datetime, str, str | None]]:
        """(account, at, action, ward of the row) of the accounts after ``after`` up to ``last``,
        account by account, each in the order things happened: the rows before ``before``, and
        every move (the first one tells where the person lived before it, even when it came
        later)."""
        stmt = (
            select(
                AccountEvent.account_id,
                AccountEvent.at,
                AccountEvent.action,
                AccountEvent.ward_code,
            )
            .where(
                AccountEvent.account_id <= last,
                or_(AccountEvent.at < before, AccountEvent.action == "moved_out"),
            )
            .order_by(AccountEvent.account_id, AccountEvent.id)
        )
        if after is not None:
            stmt = stmt.where(AccountEvent.account_id > after)
        rows = await self.session.execute(stmt)
        return [(account, at, action, ward) for account, at, action, ward in rows]
