"""All SQL of the identity context."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    String,
    and_,
    bindparam,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
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
from vnehr.identity.numbers import check_personal_id
from vnehr.kit.db import folded, hot_fetch, insert_for
from vnehr.kit.errors import VnehrError

_PERSON_ID = select(Person.id).where(Person.personal_id == bindparam("personal_id"))
#: (id, birth known to the day, partial birth, signed in with VNeID, name, birth date)
_BIRTH_COLUMNS = (
    Person.id,
    Person.birth_date.is_not(None),
    Person.birth_partial,
    Person.vneid_sub.is_not(None),
    Person.full_name,
    Person.birth_date,
)
_PERSON_BIRTH = select(*_BIRTH_COLUMNS).where(Person.personal_id == bindparam("personal_id"))
#: The same columns of pending persons, read again with their rows locked, in id order
#: (PostgreSQL): a first VNeID sign-in (an UPDATE of the row) and a write judged against the
#: person's pending state take turns, so that the sign-in's re-check sees what the write
#: filed (D176). Not a share lock: two writers that both make a birth more precise
#: (``_BETTER_BIRTH``) would each wait for the other's.
_PENDING_LOCKED_PG = text(
    "SELECT personal_id, id, birth_date IS NOT NULL, birth_partial, vneid_sub IS NOT NULL,"
    " full_name, birth_date FROM person WHERE id = ANY(CAST(:ids AS bigint[]))"
    " ORDER BY id FOR NO KEY UPDATE"
)
#: Writers naming the same personal IDs take turns (PostgreSQL; D200): a transaction that will
#: match several persons (one by one, or in one statement in the order of their ids) takes
#: these locks first, in one statement, in sorted order, so that two writes naming the same
#: persons in other orders (their row locks and new-person inserts) wait for each other
#: instead of deadlocking. A lock stands for a bucket of IDs (4,096 buckets, the two-key form:
#: apart from the other advisory locks): however many persons a batch names, it holds at most
#: 4,096 of PostgreSQL's shared lock slots (an import's batch of thousands of persons named one
#: lock each ran out of them), and two writes sharing a bucket by chance only take turns.
PERSON_LOCK_BUCKETS = 4096
_LOCK_PERSONS_PG = text(
    "SELECT count(pg_advisory_xact_lock(170, b)) FROM (SELECT DISTINCT"
    " CAST(hashtextextended(k, 170) & :mask AS integer) AS b"
    " FROM unnest(CAST(:keys AS text[])) AS u(k) ORDER BY b) AS s"
)
_BETTER_BIRTH = (
    update(Person)
    .where(Person.id == bindparam("p_id"), Person.birth_date.is_(None))
    .values(birth_date=bindparam("p_birth_date"), birth_partial=bindparam("p_birth_partial"))
)
#: The age of majority (Civil Code 2015 Art. 20): a parent's representation ends then.
MAJORITY = 18
#: From this age (for all we know, the earliest day) what a representative sees of who looked
#: at the person's record (access log, inbox, phone) names no facility: the young person may
#: have chosen that care in confidence (``healthbook.access_log``, ``exchange`` notifications).
CONFIDENTIAL_AGE = 16


def came_of_age(born: date, years: int = MAJORITY) -> date:
    """The 18th (``years``th) birthday (one born on 29 February has it on 1 March)."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def _first_day(partial: str) -> date:
    """The earliest day a birth known as "yyyy" or "yyyy-mm" may have been."""
    return date(int(partial[:4]), int(partial[5:7] or 1), 1)


def of_age_from(
    born: date | None, partial: str | None, personal_id: str | None, years: int = MAJORITY
) -> date | None:
    """The day the person is of age (``years`` old) for all we know: the 18th birthday; for a
    birth known by its year or month only ("2006", "2008-11"), or by the year the personal ID
    encodes when no birth is recorded, the earliest day it may be (1 January or the 1st of the
    month: a possible adult's book is not read by a parent, D105). None: nothing tells the
    age."""
    if born is not None:
        return came_of_age(born, years)
    if partial:
        return came_of_age(_first_day(partial), years)
    try:
        year = check_personal_id(personal_id or "", any_birthplace=True).birth_year
    except VnehrError:
        return None
    return date(year + years, 1, 1)


def of_age(person: Person) -> date | None:
    """``of_age_from`` of a stored person."""
    return of_age_from(person.birth_date, person.birth_partial, person.personal_id)


def better_birth(
    known_day: bool, stored: str | None, born: date | None, partial: str | None
) -> bool:
    """Whether a birth reported now (``born`` to the day, else ``partial``) says more than the
    stored one and agrees with it: a day where none was, a month where only the year was.
    Never less precise, never a contradiction (a registrar corrects those)."""
    if known_day:
        return False
    if born is not None:
        return stored is None or born.isoformat().startswith(stored)
    if not partial:
        return False
    return stored is None or (len(partial) > len(stored) and partial.startswith(stored))


def represents(link: Representative, adult: date | None, on: date) -> bool:
    """Whether a link in force by its dates still represents on ``on``: a parent's ends at the
    child's majority (``adult``, from ``of_age``; Civil Code 2015 Art. 136: parents represent
    minor children), and so does a guardianship that began while the ward was a minor
    (Art. 62); a guardianship that began when the ward was already of age (a court's
    appointment for an adult, Art. 47, 53) lasts its recorded period. When nothing tells the
    age (no birth, no personal ID: a provisional person) the recorded period stands."""
    if adult is None or on < adult:
        return True
    return link.relation == "guardian" and link.valid_from >= adult


_NEW_PERSON_COLUMNS = (
    "personal_id", "full_name", "birth_date", "birth_partial", "sex", "provisional",
    "created_at", "created_by",
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
    "INSERT INTO person (personal_id, full_name, birth_date, birth_partial, sex, provisional,"
    " created_at, created_by) SELECT p.personal_id, p.full_name, p.birth_date, p.birth_partial,"
    " p.sex, false, p.created_at, p.created_by FROM unnest(CAST(:personal_id AS text[]),"
    " CAST(:full_name AS text[]), CAST(:birth_date AS date[]), CAST(:birth_partial AS text[]),"
    " CAST(:sex AS text[]), CAST(:created_at AS timestamptz[]), CAST(:created_by AS text[]))"
    " AS p(personal_id, full_name, birth_date, birth_partial, sex, created_at, created_by)"
    " ON CONFLICT (personal_id) DO NOTHING RETURNING personal_id"
)
_PERSON_IDS_PG = text(
    "SELECT personal_id, id, birth_date IS NOT NULL, birth_partial, vneid_sub IS NOT NULL,"
    " full_name, birth_date FROM person WHERE personal_id = ANY(CAST(:ids AS text[]))"
)
#: What VNeID confirmed of a person who signed in: (name, birth date, partial birth), as the
#: population register has them (``sign_in`` keeps them in step).
Confirmed = tuple[str, date | None, str | None]


def _confirmed(row: Any) -> Confirmed | None:
    """The confirmed part of a row of ``_PERSON_BIRTH`` (from its 4th column on)."""
    signed_in, name, born = row[3], row[4], row[5]
    if not signed_in:
        return None
    return str(name or ""), born, row[2]


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

    async def lock_personal_ids(self, personal_ids: set[str]) -> None:
        """Take the writer's lock of these personal IDs until the transaction ends, all at once
        in one order (PostgreSQL, when there are two or more: one is taken in one step anyway;
        SQLite's writers take turns). For a write that then matches them one by one (D200)."""
        if len(personal_ids) > 1 and self.session.get_bind().dialect.name == "postgresql":
            params = {"keys": sorted(personal_ids), "mask": PERSON_LOCK_BUCKETS - 1}
            await hot_fetch(self.session, _LOCK_PERSONS_PG, params)

    async def person_by_personal_id(self, personal_id: str) -> Person | None:
        stmt = select(Person).where(Person.personal_id == personal_id)
        return (await self.session.scalars(stmt)).first()

    async def person_by_vneid_sub(self, sub: str) -> Person | None:
        stmt = select(Person).where(Person.vneid_sub == sub)
        return (await self.session.scalars(stmt)).first()

    async def person_id_or_new(self, **values: Any) -> int:
        """The id of the person with ``values["personal_id"]``, inserting them if unknown (safe
        when two transactions meet the same new person: the second reads the first's row).
        A known person's birth is made more precise when ``values`` know more
        (``better_birth``). The intake's hot path: prebuilt statements through ``hot_fetch``."""
        return (await self.person_or_new(**values))[0]

    async def person_confirmed(self, personal_id: str) -> tuple[int, Confirmed | None] | None:
        """The person holding ``personal_id`` (None: nobody) with what VNeID confirmed of
        them; creates no one."""
        found = await hot_fetch(self.session, _PERSON_BIRTH, {"personal_id": personal_id})
        if not found:
            return None
        row = await self._pending_locked(found[0])
        return int(row[0]), _confirmed(row)

    async def person_or_new(self, **values: Any) -> tuple[int, Confirmed | None]:
        """``person_id_or_new``, with what VNeID confirmed of a known person (None: not signed
        in, or new), read in the same statement."""
        key = {"personal_id": values["personal_id"]}
        found = await hot_fetch(self.session, _PERSON_BIRTH, key)
        if found:
            row = await self._pending_locked(found[0])
            person_id, known_day, stored = row[:3]
            born, partial = values.get("birth_date"), values.get("birth_partial")
            if better_birth(bool(known_day), stored, born, partial):
                await self._better_birth(int(person_id), born, partial)
            return int(person_id), _confirmed(row)
        dialect = self.session.get_bind().dialect.name
        params = {f"p_{name}": values.get(name) for name in _NEW_PERSON_COLUMNS}
        params["p_provisional"] = False
        created = await hot_fetch(self.session, _NEW_PERSON[dialect], params)
        if created:
            return int(created[0][0]), None
        return int((await hot_fetch(self.session, _PERSON_ID, key))[0][0]), None

    async def new_person_once(self, **values: Any) -> Person:
        """The person holding ``values["personal_id"]``, inserted with ``values`` unless the
        ID is taken: by a transaction making them known at this moment, that is waited for
        (its person is the one returned)."""
        dialect = self.session.get_bind().dialect.name
        params = {f"p_{name}": values.get(name) for name in _NEW_PERSON_COLUMNS}
        params["p_provisional"] = False
        await hot_fetch(self.session, _NEW_PERSON[dialect], params)
        person = await self.person_by_personal_id(values["personal_id"])
        if person is None:
            raise RuntimeError("a person inserted or found is not there")
        return person

    async def _better_birth(self, person_id: int, born: date | None, partial: str | None) -> None:
        params = {"p_id": person_id, "p_birth_date": born, "p_birth_partial": partial}
        if born is not None:
            params["p_birth_partial"] = None
        await hot_fetch(self.session, _BETTER_BIRTH, params)

    async def persons_or_new(
        self, rows: list[dict[str, Any]]
    ) -> dict[str, tuple[int, Confirmed | None]]:
        """``person_or_new`` for many distinct personal IDs: one multi-row insert of the
        unknown ones, one read of every id with what VNeID confirmed of them (a person the
        insert has just made is not confirmed); a known person's birth made more precise when
        a row knows more (``better_birth``)."""
        if not rows:
            return {}
        if self.session.get_bind().dialect.name == "postgresql":
            found = await self._person_ids_or_new_pg(rows)
        else:
            insert = insert_for(self.session)
            await self.session.execute(
                insert(Person)
                .values([{"birth_partial": None, **row, "provisional": False} for row in rows])
                .on_conflict_do_nothing(index_elements=["personal_id"])
            )
            found = list(
                await self.session.execute(
                    select(Person.personal_id, *_BIRTH_COLUMNS).where(
                        Person.personal_id.in_([row["personal_id"] for row in rows])
                    )
                )
            )
        by_id = {row["personal_id"]: row for row in rows}
        result: dict[str, tuple[int, Confirmed | None]] = {}
        for personal_id, *person in found:
            person_id, known_day, stored = person[:3]
            row = by_id[str(personal_id)]
            born, partial = row.get("birth_date"), row.get("birth_partial")
            if better_birth(bool(known_day), stored, born, partial):
                await self._better_birth(int(person_id), born, partial)
            result[str(personal_id)] = int(person_id), _confirmed(person)
        return result

    async def _person_ids_or_new_pg(self, rows: list[dict[str, Any]]) -> list[Any]:
        """The same with the values as arrays: one statement text whatever the count. Rows of
        (personal ID, id, birth known to the day, partial birth, signed in, name, birth)."""
        names = ("personal_id", "full_name", "birth_date", "birth_partial", "sex")
        # in the order of the IDs: two batches inserting the same new persons wait for each
        # other's rows in one order, not in a circle (D200)
        rows = sorted(rows, key=lambda row: str(row["personal_id"]))
        columns = {name: [row.get(name) for row in rows] for name in names}
        columns["created_at"] = [row["created_at"] for row in rows]
        columns["created_by"] = [row["created_by"] for row in rows]
        created = {row[0] for row in await hot_fetch(self.session, _NEW_PERSONS_PG, columns)}
        found = await hot_fetch(self.session, _PERSON_IDS_PG, {"ids": columns["personal_id"]})
        # pending persons this transaction did not create: read again, locked (before any
        # birth is made more precise: the locks in one order)
        pending = sorted(int(row[1]) for row in found if not row[4] and row[0] not in created)
        if not pending:
            return found
        again = await hot_fetch(self.session, _PENDING_LOCKED_PG, {"ids": pending})
        locked = {row[1]: row for row in again}
        return [locked.get(row[1], row) for row in found]

    async def _pending_locked(self, row: Any) -> Any:
        """A row of ``_PERSON_BIRTH`` of a person not signed in with VNeID, read again with the
        row locked on PostgreSQL (D176): a first sign-in under way is waited for (and its
        confirmed details read), and a first sign-in that comes next waits for this
        transaction, whose filing its re-check then sees. Elsewhere, or for a person signed in
        already, the row as it is (SQLite's writers take turns)."""
        if row[3] or self.session.get_bind().dialect.name != "postgresql":
            return row
        [locked] = await hot_fetch(self.session, _PENDING_LOCKED_PG, {"ids": [int(row[0])]})
        return locked[1:]

    async def person(self, person_id: int) -> Person | None:
        return await self.session.get(Person, person_id)

    async def persons(self, ids: list[int]) -> list[Person]:
        if not ids:
            return []
        stmt = select(Person).where(Person.id.in_(ids), Person.merged_into_id.is_(None))
        return list(await self.session.scalars(stmt))

    async def account_of(self, person_id: int, *, to_change: bool = False) -> HealthAccount | None:
        """The person's account; ``to_change``: the person's row held first (``hold_person``)
        and the account read afresh, so that an open or a close sent twice at once is done
        once (the second finds what the first wrote)."""
        stmt = select(HealthAccount).where(HealthAccount.person_id == person_id)
        if to_change:
            await self.hold_person(person_id)
            stmt = stmt.execution_options(populate_existing=True)
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
        return [(row[0], row[1]) for row in rows if represents(row[0], of_age(row[1]), on)]

    async def representatives(
        self, subject_id: int, on: date
    ) -> list[tuple[Representative, Person]]:
        """Who may act for ``subject_id`` on ``on`` (each agent once, oldest link first; a
        minor's parent no longer once the child is of age, ``represents``)."""
        represented = aliased(Person)
        rows = await self.session.execute(
            select(
                Representative,
                Person,
                represented.birth_date,
                represented.birth_partial,
                represented.personal_id,
            )
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
            if represents(row[0], of_age_from(row[2], row[3], row[4]), on):
                found.setdefault(row[1].id, (row[0], row[1]))
        return list(found.values())

    async def links_of(self, subject_id: int) -> list[tuple[Representative, Person]]:
        """Every link of ``subject_id``, in force or not, with its agent, newest recorded
        first; an agent merged into another person since is left out, as ``representing`` and
        ``representatives`` leave them out."""
        rows = await self.session.execute(
            select(Representative, Person)
            .join(Person, Person.id == Representative.agent_id)
            .where(Representative.subject_id == subject_id, Person.merged_into_id.is_(None))
            .order_by(Representative.created_at.desc(), Representative.id.desc())
        )
        return [(row[0], row[1]) for row in rows]

    async def link_to_change(self, link_id: int) -> Representative | None:
        """The link, whose row this transaction then holds (PostgreSQL; SQLite's writers take
        turns anyway): two ends of it sent at once take turns, the second finding what the
        first wrote."""
        stmt = (
            select(Representative)
            .where(Representative.id == link_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).first()

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

    @staticmethod
    def _held_at(
        facility_code: str,
        words: Sequence[str] = (),
        personal_id: str | None = None,
        id_ending: str | None = None,
    ) -> tuple[Any, Any, list[ColumnElement[bool]]]:
        """(rank, role, conditions) of the roles held now at a facility, its administrators
        ranked 0 and the others 1; with a search, those of a whole ``personal_id``, of an ID
        ending in ``id_ending`` (digits) held by no one on record with a name (the rows the
        staff list shows by that ending, D235), and of a person on record whose name has each of
        ``words`` (folded letters and digits: no escaping needed) at the start of one of its
        words. A name search reads the facility's roles (its index) with their names folded
        (``kit.db.folded``) into a materialized CTE: each name is folded once, and only
        those (a planner free to would fold every person, or fold the facility's names again
        for each of its roles: 3,000 staff took 48 s so)."""
        rank = case((RoleGrant.role == "facility_admin", 0), else_=1)
        where: list[ColumnElement[bool]] = [
            RoleGrant.facility_code == facility_code,
            RoleGrant.revoked_at.is_(None),
        ]
        if personal_id is not None:
            where.append(RoleGrant.personal_id == personal_id)
        if id_ending is not None:
            # (only those the list shows by their ending: no recorded name. A named person's
            # ending would tell a reader who tried all 10,000 endings her ID's last digits)
            holder = aliased(Person)
            named_holder = (
                select(holder.id)
                .where(holder.personal_id == RoleGrant.personal_id, holder.full_name != "")
                .correlate(RoleGrant)
                .exists()
            )
            where += [RoleGrant.personal_id.like(f"%{id_ending}"), ~named_holder]
        if not words:
            return rank, RoleGrant, where
        key = literal(" ", String()).concat(folded(Person.full_name))
        held = (
            select(*RoleGrant.__table__.c, rank.label("rank"), key.label("name_key"))
            .join(Person, Person.personal_id == RoleGrant.personal_id)
            .where(*where)
            .cte("held")
            .prefix_with("MATERIALIZED")
        )
        named: list[ColumnElement[bool]] = [held.c.name_key.like(f"% {w}%") for w in words]
        return held.c.rank, aliased(RoleGrant, held), named

    async def grants_at_facility(
        self,
        facility_code: str,
        *,
        after: tuple[int, int] | None,
        limit: int,
        words: Sequence[str] = (),
        personal_id: str | None = None,
        id_ending: str | None = None,
    ) -> list[tuple[int, RoleGrant]]:
        """The next ``limit`` roles held at the facility after ``after`` (rank, id), each with
        its rank: its administrators (0) first, then the others (1), each by when given;
        those a search names (``_held_at``) when it is given."""
        rank, grant, where = self._held_at(facility_code, words, personal_id, id_ending)
        stmt = select(rank, grant).where(*where)
        if after is not None:
            stmt = stmt.where(or_(rank > after[0], and_(rank == after[0], grant.id > after[1])))
        found = await self.session.execute(stmt.order_by(rank, grant.id).limit(limit))
        return [(int(row[0]), row[1]) for row in found]

    async def count_grants_at_facility(
        self,
        facility_code: str,
        words: Sequence[str] = (),
        personal_id: str | None = None,
        id_ending: str | None = None,
    ) -> int:
        _, grant, where = self._held_at(facility_code, words, personal_id, id_ending)
        stmt = select(func.count()).select_from(grant).where(*where)
        return int(await self.session.scalar(stmt) or 0)

    async def names_by_personal_id(self, personal_ids: set[str]) -> dict[str, str]:
        """The recorded full names of these personal IDs (those on record), in one statement
        per 5,000 (under the drivers' limits on parameters)."""
        ordered, found = sorted(personal_ids), {}
        for start in range(0, len(ordered), 5000):
            stmt = select(Person.personal_id, Person.full_name).where(
                Person.personal_id.in_(ordered[start : start + 5000])
            )
            found.update({str(pid): name for pid, name in await self.session.execute(stmt)})
        return found

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

    async def assisted_openings(
        self, actor: str, ward_code: str, limit: int
    ) -> list[tuple[datetime, str, Person]]:
        """The health books ``actor`` opened or reopened at ward ``ward_code``'s office, newest
        first: (when, opened | reopened, the person). Read by ``ix_health_account_event_actor``."""
        stmt = (
            select(AccountEvent.at, AccountEvent.action, Person)
            .join(HealthAccount, HealthAccount.id == AccountEvent.account_id)
            .join(Person, Person.id == HealthAccount.person_id)
            .where(
                AccountEvent.actor == actor,
                AccountEvent.channel == "assisted",
                AccountEvent.ward_code == ward_code,
                AccountEvent.action.in_(("opened", "reopened")),
            )
            .order_by(AccountEvent.at.desc(), AccountEvent.id.desc())
            .limit(limit)
        )
        return [(at, action, person) for at, action, person in await self.session.execute(stmt)]

    async def newborns_recorded(
        self, actor: str, ward_code: str, limit: int
    ) -> list[tuple[Person, Person]]:
        """The newborns ``actor`` recorded whose mother lived in ward ``ward_code`` then (the
        child's residence is hers), newest first, with the mother: (child, mother)."""
        mother = aliased(Person)
        stmt = (
            select(Person, mother)
            .join(mother, mother.id == Person.mother_id)
            .where(Person.residence_ward_code == ward_code, Person.created_by == actor)
            .order_by(Person.created_at.desc(), Person.id.desc())
            .limit(limit)
        )
        return [(child, mum) for child, mum in await self.session.execute(stmt)]

    async def hold_person(self, person_id: int) -> None:
        """Hold the person's row until this transaction ends, as ``person_to_change`` does
        (PostgreSQL; SQLite's writers take turns anyway)."""
        await self.session.execute(
            select(Person.id).where(Person.id == person_id).with_for_update(key_share=True)
        )

    async def person_to_change(self, personal_id: str) -> Person | None:
        """The person, whose row this transaction then holds (PostgreSQL; SQLite's writers
        take turns anyway): a second form sent at once for them waits, then finds what the
        first one wrote."""
        stmt = (
            select(Person)
            .where(Person.personal_id == personal_id)
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        return (await self.session.scalars(stmt)).first()

    async def same_representative(
        self,
        agent_id: int,
        subject_id: int,
        relation: str,
        valid_from: date,
        valid_to: date | None,
    ) -> Representative | None:
        """A link recorded already with all these values (the same form sent again)."""
        stmt = select(Representative).where(
            Representative.agent_id == agent_id,
            Representative.subject_id == subject_id,
            Representative.relation == relation,
            Representative.valid_from == valid_from,
            Representative.valid_to.is_(None)
            if valid_to is None
            else Representative.valid_to == valid_to,
        )
        return (await self.session.scalars(stmt.limit(1))).first()

    async def same_card(
        self, person_id: int, card_number: str, valid_from: date | None, valid_to: date | None
    ) -> InsuranceCard | None:
        """A card of the person's history recorded already with this number and period."""
        stmt = select(InsuranceCard).where(
            InsuranceCard.person_id == person_id,
            InsuranceCard.card_number == card_number,
            InsuranceCard.valid_from.is_(None)
            if valid_from is None
            else InsuranceCard.valid_from == valid_from,
            InsuranceCard.valid_to.is_(None)
            if valid_to is None
            else InsuranceCard.valid_to == valid_to,
        )
        return (await self.session.scalars(stmt.limit(1))).first()

    async def cards_by_id(self, ids: list[int]) -> dict[int, InsuranceCard]:
        if not ids:
            return {}
        stmt = select(InsuranceCard).where(InsuranceCard.id.in_(ids))
        return {card.id: card for card in await self.session.scalars(stmt)}
