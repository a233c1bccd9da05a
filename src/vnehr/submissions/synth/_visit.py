"""One synthetic visit (one HOSO): patient, times, diagnosis, drugs, services, results, notes,
papers and money, as the exact strings of the national tables; optionally with one defect."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from random import Random
from typing import Final, TypeVar

from vnehr.submissions.spec import SAME_AS_XML1
from vnehr.submissions.synth import _catalog as cat
from vnehr.submissions.synth._xml import row_fields

T = TypeVar("T")

#: What the referral (XML13) repeats of XML1 and the paper rules hold equal (PAP-0111).
_REFERRAL_COPIES: Final[dict[str, str]] = {
    "MA_NOI_DEN": "MA_NOI_DEN",
    "MA_BENH_CHINH": "MA_BENH_CHINH",
    "NGAY_RA": "NGAY_RA",
}

#: Defect labels, in the order ``write_files`` draws them from.
DEFECTS: Final[tuple[str, ...]] = (
    "missing_required",
    "bad_date",
    "ngay_ra_before_ngay_vao",
    "bad_icd",
    "wrong_total",
    "wrong_bhtt",
    "wrong_line_amount",
    "bad_cccd_sex",
    "bad_card",
    "mismatched_ma_lk",
    "wrong_so_ngay_dtri",
    "bad_care_type",
    "facility_mismatch",
    "too_long",
)
#: Care types (MA_LOAI_KCB) this generator can simulate.
CARE_TYPES: Final = ("01", "02", "03", "04", "07", "09")
#: Mix used when ``care_type`` is not given: 70 % exam, 10 % outpatient treatment, 15 %
#: inpatient, 5 % day inpatient.
CARE_MIX: Final = (("01", 70), ("02", 10), ("03", 15), ("04", 5))
INSURED_SHARE: Final = 0.9
#: Defaults of a "typical visit".
TYPICAL_DRUGS: Final = 8
TYPICAL_SERVICES: Final = 12
TYPICAL_LABS: Final = 10
TYPICAL_NOTES: Final = 3
#: Visits end between these days when ``ended`` is not given (after the 1 July 2025 reform, so
#: that post-reform ward codes are right for the whole stay).
FIRST_END_DAY: Final = date(2025, 7, 15)
LAST_END_DAY: Final = date(2026, 6, 30)

BAD_ICD: Final = "Z99.99X"
BAD_CARE_TYPE: Final = "99"
TOO_LONG: Final = 300

_CENT: Final = Decimal("0.01")
_MILL: Final = Decimal("0.001")
_ZERO: Final = Decimal(0)
_HUNDRED: Final = Decimal(100)
_INPATIENT: Final = ("03", "04", "09")
_NOT_FOR_CHILDREN: Final = frozenset(
    {"ciprofloxacin", "meloxicam", "eperison", "clopidogrel", "aspirin", "glucosamin"}
)


@dataclass
class SynthVisit:
    """One visit (one HOSO) ready to be written."""

    ma_lk: str
    #: "XML1" -> rows; each row maps every field of the table (tables.json order; XML13 also
    #: carries the fields of the 3176 variant) to the exact text to write ("" = empty).
    tables: dict[str, list[dict[str, str]]]
    #: None for a clean visit, else one of :data:`DEFECTS`.
    defect: str | None
    insured: bool
    #: The kind of care simulated (MA_LOAI_KCB). With the ``bad_care_type`` defect XML1 says
    #: "99" while this keeps the real one.
    care_type: str
    #: When the visit really ended (NGAY_RA before any defect); the default ``NGAYLAP``.
    ended: datetime | None = None


# ------------------------------------------------------------------ small helpers


def _q2(value: Decimal) -> Decimal:
    return value.quantize(_CENT, rounding=ROUND_HALF_UP)


def money(value: Decimal) -> str:
    """Money as written: 2 decimals, never an exponent ("37500.00")."""
    return f"{_q2(value):f}"


def unit_price(value: Decimal) -> str:
    """A unit price as written: 3 decimals ("12500.000")."""
    return f"{value.quantize(_MILL, rounding=ROUND_HALF_UP):f}"


def quantity(value: Decimal) -> str:
    """A quantity: plain integer when whole ("14"), else its decimals ("3.5")."""
    value = value.quantize(_MILL, rounding=ROUND_HALF_UP)
    if value == value.to_integral_value():
        return str(int(value))
    return f"{value.normalize():f}"


def moment(value: datetime) -> str:
    return value.strftime("%Y%m%d%H%M")


def day(value: date) -> str:
    return value.strftime("%Y%m%d")


def _weighted(rng: Random, options: Sequence[tuple[T, int]]) -> T:
    return rng.choices([o for o, _ in options], weights=[w for _, w in options])[0]


def _between(rng: Random, start: datetime, end: datetime, low: float, high: float) -> datetime:
    """A whole minute between start + low x span and start + high x span (never after end)."""
    span = int((end - start).total_seconds() // 60)
    minutes = int(span * (low + (high - low) * rng.random()))
    return start + timedelta(minutes=min(max(minutes, 0), span))


def _row(table: str, **values: str) -> dict[str, str]:
    fields = row_fields(table)
    unknown = set(values) - set(fields)
    if unknown:
        raise KeyError(f"{table}: no field {sorted(unknown)}")
    return {name: values.get(name, "") for name in fields}


def _age(birth: date, on: date) -> int:
    return on.year - birth.year - ((on.month, on.day) < (birth.month, birth.day))


def head_of_facility(facility_code: str) -> str:
    """MA_TTDV: a stable 10-digit social-insurance number for the head of a facility."""
    prefix = facility_code[:2] if facility_code[:2].isdigit() else "01"
    return f"{prefix}{zlib.crc32(facility_code.encode()) % 10**8:08d}"


# ------------------------------------------------------------------ patient


@dataclass(frozen=True, slots=True)
class _Patient:
    name: str
    family: str
    sex: int  # GIOI_TINH 1/2
    birth: date
    personal_id: str
    address: str
    ward: str
    phone: str
    code: str
    weight: str
    blood: str
    ethnicity: str
    employer: str
    card: str = ""
    card_from: str = ""
    card_to: str = ""
    primary_facility: str = ""
    benefit: int = 0  # MUC_HUONG percent; 0 when not insured
    father: str = ""
    mother: str = ""


_AGE_BRACKETS: Final = (((0, 5), 10), ((6, 17), 10), ((18, 39), 25), ((40, 59), 25), ((60, 85), 30))


def _years_before(moment_: date, years: int) -> date:
    try:
        return moment_.replace(year=moment_.year - years)
    except ValueError:  # 29 February
        return moment_.replace(year=moment_.year - years, day=28)


def _birth_date(rng: Random, start: date, ages: tuple[int, int] | None) -> date:
    """A birth date in 1940-2024, at least 30 days before ``start``, aged ``ages`` at start."""
    earliest, latest = date(1940, 1, 1), min(date(2024, 12, 31), start - timedelta(days=30))
    low, high = ages if ages is not None else _weighted(rng, _AGE_BRACKETS)
    first = max(earliest, _years_before(start, high + 1) + timedelta(days=1))
    last = min(latest, _years_before(start, low))
    if first > last:
        first, last = earliest, latest
    return first + timedelta(days=rng.randrange((last - first).days + 1))


def _given_name(rng: Random, sex: int) -> tuple[str, str, str]:
    family = _weighted(rng, cat.FAMILY_NAMES)
    if sex == 1:
        return family, rng.choice(cat.MALE_MIDDLE), rng.choice(cat.MALE_GIVEN)
    return family, rng.choice(cat.FEMALE_MIDDLE), rng.choice(cat.FEMALE_GIVEN)


def _personal_id(rng: Random, sex: int, birth: date) -> str:
    province = _weighted(rng, cat.ID_PROVINCES)
    century = (birth.year // 100 - 19) * 2 + (1 if sex == 2 else 0)
    return f"{province}{century}{birth.year % 100:02d}{rng.randrange(10**6):06d}"


def _weight(rng: Random, age: int) -> str:
    if age < 1:
        low, high = 4.0, 10.0
    elif age < 6:
        low, high = 10.0, 21.0
    elif age < 12:
        low, high = 19.0, 40.0
    elif age < 18:
        low, high = 35.0, 62.0
    else:
        low, high = 45.0, 82.0
    return f"{low + (high - low) * rng.random():.2f}"


def _patient(
    rng: Random, start: datetime, end: datetime, insured: bool, age_group: int | None
) -> _Patient:
    sex = rng.choice((1, 2))
    ages = None if age_group is None else _AGE_BRACKETS[age_group][0]
    birth = _birth_date(rng, start.date(), ages)
    age = _age(birth, start.date())
    family, middle, given = _given_name(rng, sex)
    ward = rng.choice(cat.WARDS)
    number = rng.randint(1, 180)
    street = rng.choice(ward.streets)
    lane = f"ngõ {rng.randint(2, 120)} " if rng.random() < 0.4 else ""
    address = f"Số {number}, {lane}{street}, {ward.name}, {cat.PROVINCE_NAME}"
    father = mother = ""
    if age < 16:
        father = f"{family} {rng.choice(cat.MALE_MIDDLE)} {rng.choice(cat.MALE_GIVEN)}"
        mother_family = _weighted(rng, cat.FAMILY_NAMES)
        mother = f"{mother_family} {rng.choice(cat.FEMALE_MIDDLE)} {rng.choice(cat.FEMALE_GIVEN)}"
    patient = _Patient(
        name=f"{family} {middle} {given}",
        family=family,
        sex=sex,
        birth=birth,
        personal_id=_personal_id(rng, sex, birth),
        address=address,
        ward=ward.code,
        phone=f"09{rng.randrange(10**8):08d}" if rng.random() < 0.85 else "",
        code=f"BN{rng.randrange(10**8):08d}",
        weight=_weight(rng, age),
        blood=_weighted(rng, (("", 50), ("O", 22), ("A", 12), ("B", 11), ("AB", 5))),
        ethnicity=_weighted(rng, (("01", 95), ("06", 3), ("02", 2))),  # Kinh, Mường, Tày
        employer=rng.choice(cat.EMPLOYERS) if 18 <= age < 60 else "",
        father=father,
        mother=mother,
    )
    if not insured:
        return patient
    categories: cat.CardCategories
    if age < 6:
        categories = cat.CARD_CATEGORIES_CHILD
    elif age < 18:
        categories = cat.CARD_CATEGORIES_PUPIL
    elif age < 60:
        categories = cat.CARD_CATEGORIES_ADULT
    else:
        categories = cat.CARD_CATEGORIES_SENIOR
    category, level = _weighted(rng, [((c, lv), w) for c, lv, w in categories])
    social = f"{cat.PROVINCE_CODE}{rng.randrange(10**8):08d}"
    valid_from = max(date(start.year, 1, 1), birth)
    valid_to = date(end.year, 12, 31)
    return replace(
        patient,
        card=f"{category}{level}{cat.PROVINCE_CODE}{social}",
        card_from=day(valid_from),
        card_to=day(valid_to),
        primary_facility=rng.choice(cat.HANOI_FACILITIES),
        benefit=cat.BENEFIT_PERCENT[level],
    )


# ------------------------------------------------------------------ times


def _times(
    rng: Random, care: str, ended: datetime | None
) -> tuple[datetime, datetime, datetime | None]:
    """(NGAY_VAO, NGAY_RA, NGAY_VAO_NOI_TRU)."""
    end = None if ended is None else ended.replace(tzinfo=None, second=0, microsecond=0)
    end_day = end.date() if end else FIRST_END_DAY + timedelta(
        days=rng.randrange((LAST_END_DAY - FIRST_END_DAY).days + 1)
    )  # fmt: skip
    if care in ("01", "07", "09"):
        minutes = {"01": (15, 90), "07": (15, 60), "09": (60, 239)}[care]
        length = timedelta(minutes=rng.randint(*minutes))
        if end is None:
            start = datetime.combine(end_day, time(7)) + timedelta(minutes=rng.randrange(9 * 60))
            end = start + length
        else:
            start = end - length
        admitted = start + timedelta(minutes=rng.randint(5, 20)) if care == "09" else None
        return start, end, admitted
    days = {"02": (3, 10), "03": (2, 10), "04": (2, 7)}[care]
    treatment_days = rng.randint(*days)
    if end is None:
        end = {
            "02": datetime.combine(end_day, time(23, 59)),
            "03": datetime.combine(end_day, time(8)) + timedelta(minutes=rng.randrange(240)),
            "04": datetime.combine(end_day, time(15)) + timedelta(minutes=rng.randrange(120)),
        }[care]
    first_day = end.date() - timedelta(days=treatment_days - 1)
    opens = {"02": (7, 240), "03": (6, 16 * 60), "04": (7, 120)}[care]
    start = datetime.combine(first_day, time(opens[0])) + timedelta(minutes=rng.randrange(opens[1]))
    admitted = min(start + timedelta(minutes=rng.randint(20, 90)), end)
    return start, end, admitted


def treatment_days(care: str, start: datetime, end: datetime) -> int:
    """SO_NGAY_DTRI by the §1.5 rule (0 for 01/07/09; days counted both ends otherwise)."""
    if care in ("01", "07", "09"):
        return 0
    return (end.date() - start.date()).days + 1


# ------------------------------------------------------------------ money


@dataclass(frozen=True, slots=True)
class _Money:
    amount: Decimal  # THANH_TIEN_BV
    covered: Decimal  # THANH_TIEN_BH
    fund: Decimal  # T_BHTT
    copay: Decimal  # T_BNCCT
    own: Decimal  # T_BNTT

    @staticmethod
    def split(amount: Decimal, rate: int, benefit: int) -> _Money:
        covered = _q2(amount * rate / _HUNDRED)
        fund = _q2(covered * benefit / _HUNDRED)
        return _Money(amount, covered, fund, covered - fund, amount - covered)

    def fields(self) -> dict[str, str]:
        return {
            "THANH_TIEN_BV": money(self.amount),
            "THANH_TIEN_BH": money(self.covered),
            "T_NGUONKHAC_NSNN": money(_ZERO),
            "T_NGUONKHAC_VTNN": money(_ZERO),
            "T_NGUONKHAC_VTTN": money(_ZERO),
            "T_NGUONKHAC_CL": money(_ZERO),
            "T_NGUONKHAC": money(_ZERO),
            "T_BNTT": money(self.own),
            "T_BNCCT": money(self.copay),
            "T_BHTT": money(self.fund),
        }


# ------------------------------------------------------------------ the visit


@dataclass
class _Context:
    rng: Random
    facility: str
    care: str
    insured: bool
    start: datetime
    end: datetime
    admitted: datetime | None
    patient: _Patient
    diagnosis: cat.Diagnosis
    secondary: list[cat.Diagnosis]
    doctor: cat.Practitioner
    department: str
    ma_lk: str
    defect: str | None
    child: bool
    results: list[str] = field(default_factory=list)  # for the summaries

    @property
    def days(self) -> int:
        return treatment_days(self.care, self.start, self.end)

    @property
    def inpatient(self) -> bool:
        return self.care in _INPATIENT

    @property
    def diagnosis_text(self) -> str:
        return "; ".join([self.diagnosis.title] + [d.title for d in self.secondary])

    @property
    def head(self) -> str:
        return head_of_facility(self.facility)

    def when(self, low: float, high: float) -> datetime:
        return _between(self.rng, self.start, self.end, low, high)

    def after(self, moment_: datetime, low: float, high: float) -> datetime:
        return _between(self.rng, moment_, self.end, low, high)

    def soon(
        self, moment_: datetime, low: float, high: float, minutes: tuple[int, int]
    ) -> datetime:
        """A moment after ``moment_``: within ``minutes`` during a stay of several days, else a
        share (low..high) of what is left of a short visit. Never after the end."""
        if self.care in ("02", "03", "04"):
            return min(moment_ + timedelta(minutes=self.rng.randint(*minutes)), self.end)
        return self.after(moment_, low, high)


def _choose_diagnosis(
    rng: Random, care: str, age: int
) -> tuple[cat.Diagnosis, list[cat.Diagnosis]]:
    eligible = [
        d
        for d in cat.DIAGNOSES.values()
        if d.ages[0] <= age <= d.ages[1] and (d.inpatient or care not in _INPATIENT)
    ]
    main = rng.choice(eligible)
    pool: tuple[str, ...]
    if age >= 40:
        pool, most = cat.SECONDARY_OLDER, 2
    elif age >= 16:
        pool, most = cat.SECONDARY_YOUNGER, 1
    else:
        pool, most = (), 0
    candidates = [c for c in pool if c != main.code]
    count = rng.randint(0, most)
    return main, [cat.DIAGNOSES[c] for c in rng.sample(candidates, count)]


def _drug_rows(ctx: _Context, count: int) -> list[dict[str, str]]:
    rng, diag = ctx.rng, ctx.diagnosis

    def usable(key: str) -> bool:
        drug = cat.DRUGS[key]
        return (ctx.inpatient or not drug.inpatient_only) and not (
            ctx.child and key in _NOT_FOR_CHILDREN
        )

    keys = [k for k in diag.drugs if usable(k)]
    extra = [k for k in cat.GENERAL_DRUGS if k not in keys and usable(k)]
    rng.shuffle(extra)
    others = [k for k in cat.DRUGS if k not in keys and k not in extra and usable(k)]
    rng.shuffle(others)
    keys += extra + others
    chosen = [keys[i % len(keys)] for i in range(count)]
    if ctx.inpatient:
        days = max(ctx.days, 1)
    elif ctx.care == "02":
        days = ctx.days
    elif diag.chronic or ctx.care == "07":
        days = rng.choice((28, 30))
    else:
        days = rng.randint(5, 7)
    year = min(max(ctx.end.year, 2025), 2026)
    rows = []
    for index, key in enumerate(chosen, start=1):
        drug = cat.DRUGS[key]
        amount_given = drug.per_course or drug.dose * drug.times * days
        covered = ctx.insured and drug.covered
        share = _Money.split(
            _q2(amount_given * drug.price), 100 if covered else 0, ctx.patient.benefit
        )
        dose = "1/2" if drug.dose == Decimal("0.5") else quantity(drug.dose)
        piece = "nhát" if drug.per_course else drug.unit.lower()
        # a prescription at the end of an exam; orders from the first day of a treatment
        ordered = ctx.when(0.75, 0.95) if ctx.care in ("01", "07") else ctx.when(0.02, 0.15)
        rows.append(
            _row(
                "XML2",
                MA_LK=ctx.ma_lk,
                STT=str(index),
                MA_THUOC=drug.code,
                MA_NHOM="4",
                TEN_THUOC=drug.name,
                DON_VI_TINH=drug.unit,
                HAM_LUONG=drug.strength,
                DUONG_DUNG=drug.route,
                DANG_BAO_CHE=drug.form,
                LIEU_DUNG=f"{drug.verb}, ngày {drug.times} lần, mỗi lần {dose} {piece}",
                CACH_DUNG=drug.how,
                SO_DANG_KY=drug.registration,
                TT_THAU=f"{1520 + drug.tender_group}/QĐ-SYT;G1;N{drug.tender_group};{year}",
                PHAM_VI="1" if covered else "2",
                TYLE_TT_BH="100" if covered else "0",
                SO_LUONG=quantity(amount_given),
                DON_GIA=unit_price(drug.price),
                MUC_HUONG=str(ctx.patient.benefit),
                MA_KHOA=ctx.department,
                MA_BAC_SI=ctx.doctor.licence,
                NGAY_YL=moment(ordered),
                NGAY_TH_YL=moment(ctx.soon(ordered, 0.0, 0.05, (5, 45))),
                MA_PTTT="1",
                NGUON_CTRA="1" if covered else "4",
                **share.fields(),
            )
        )
    return rows


@dataclass(frozen=True, slots=True)
class _Item:
    kind: str  # exam, lab, imaging, bed, supply
    thing: cat.Service | cat.Supply


_KIND_ORDER: Final = {"exam": 0, "lab": 1, "imaging": 2, "bed": 3, "supply": 4}


def _pick_services(ctx: _Context, count: int) -> list[_Item]:
    rng, diag = ctx.rng, ctx.diagnosis
    items = [_Item("exam", cat.EXAM_CHILD if ctx.child else cat.EXAM_ADULT)]
    if ctx.care == "03":
        items.append(_Item("bed", cat.BED_INPATIENT_CHILD if ctx.child else cat.BED_INPATIENT))
    elif ctx.care == "04":
        items.append(_Item("bed", cat.BED_DAY))
    supply = cat.SUPPLIES[3] if ctx.inpatient else rng.choice(cat.SUPPLIES[:3])
    items.append(_Item("supply", supply))
    items += [_Item("imaging", cat.IMAGING[k]) for k in diag.imaging[:2]]
    labs = list(diag.labs)
    others = [k for k in cat.LABS if k not in labs]
    rng.shuffle(others)
    labs += others
    items += [_Item("lab", cat.LABS[k]) for k in labs]
    while len(items) < count:  # repeated control tests
        items.append(_Item("lab", cat.LABS[diag.labs[len(items) % len(diag.labs)]]))
    chosen = items[:count]
    return sorted(chosen, key=lambda item: _KIND_ORDER[item.kind])


def _service_rows(ctx: _Context, count: int) -> list[dict[str, str]]:
    rng = ctx.rng
    rows = []
    seen: set[str] = set()
    for index, item in enumerate(_pick_services(ctx, count), start=1):
        values: dict[str, str] = {}
        thing = item.thing
        amount = Decimal(1)
        if isinstance(thing, cat.Supply):
            amount = Decimal(thing.quantity * (min(ctx.days, 3) if ctx.inpatient else 1))
            values |= {
                "MA_VAT_TU": thing.code,
                "TEN_VAT_TU": thing.name,
                "TT_THAU": f"1537/QĐ-SYT;G2;N4;{min(max(ctx.end.year, 2025), 2026)}",
            }
            ordered = ctx.when(0.05, 0.3)
            done = ctx.soon(ordered, 0.0, 0.05, (0, 30))
            group = 10
        else:
            values |= {"MA_DICH_VU": thing.code, "TEN_DICH_VU": thing.name}
            group = thing.group
            if item.kind == "exam":
                ordered = ctx.start
                done = ctx.soon(ordered, 0.0, 0.05, (0, 20))
            elif item.kind == "bed":
                amount = Decimal(max(ctx.days - 1, 1) if ctx.care == "03" else ctx.days)
                ordered = done = ctx.admitted or ctx.start
                values["MA_GIUONG"] = f"H{rng.randint(1, 60):03d}"
            else:
                repeat = thing.code in seen
                seen.add(thing.code)
                ordered = ctx.when(0.45, 0.7) if repeat else ctx.when(0.05, 0.2)
                done = ctx.soon(ordered, 0.0, 0.1, (5, 60))
                values["NGAY_KQ"] = moment(ctx.soon(done, 0.05, 0.3, (30, 240)))
                values["MA_MAY"] = f"{thing.machine}.1.{ctx.facility}.{rng.randint(1, 3)}"
                values["NGUOI_THUC_HIEN"] = rng.choice(cat.TECHNICIANS).licence
        covered = ctx.insured
        share = _Money.split(_q2(amount * thing.price), 100 if covered else 0, ctx.patient.benefit)
        rows.append(
            _row(
                "XML3",
                MA_LK=ctx.ma_lk,
                STT=str(index),
                MA_NHOM=str(group),
                DON_VI_TINH=thing.unit,
                PHAM_VI="1" if covered else "2",
                SO_LUONG=quantity(amount),
                DON_GIA_BV=unit_price(thing.price),
                DON_GIA_BH=unit_price(thing.price if covered else _ZERO),
                TYLE_TT_DV="100",
                TYLE_TT_BH="100" if covered else "0",
                MUC_HUONG=str(ctx.patient.benefit),
                MA_KHOA=ctx.department,
                MA_BAC_SI=ctx.doctor.licence,
                MA_BENH=ctx.diagnosis.code,
                NGAY_YL=moment(ordered),
                NGAY_TH_YL=moment(done),
                MA_PTTT="1",
                **values,
                **share.fields(),
            )
        )
    return rows


def _lab_value(rng: Random, index: cat.LabIndex, override: tuple[str, str] | None) -> str:
    if index.text:
        return index.text
    low, high = override or (index.low, index.high)
    places = len(low.partition(".")[2])
    step = Decimal(1).scaleb(-places)
    lo, hi = Decimal(low), Decimal(high)
    steps = int((hi - lo) / step)
    return f"{lo + step * rng.randint(0, steps):f}"


def _result_rows(ctx: _Context, count: int, services: list[dict[str, str]]) -> list[dict[str, str]]:
    rng, diag = ctx.rng, ctx.diagnosis
    pool: list[tuple[cat.Service, cat.LabIndex | None, str]] = []
    catalogue = {s.code: s for s in (*cat.LABS.values(), *cat.IMAGING.values())}
    for row in services:
        service = catalogue.get(row["MA_DICH_VU"])
        if service is None:
            continue
        if service.indices:
            pool += [(service, index, row["NGAY_KQ"]) for index in service.indices]
        else:
            pool.append((service, None, row["NGAY_KQ"]))
    if not pool:  # results without billed services: tests done under another payer
        for key in diag.labs:
            service = cat.LABS[key]
            done = moment(ctx.when(0.3, 0.6))
            pool += [(service, index, done) for index in service.indices]
    rows = []
    for position in range(count):
        service, index, done = pool[position % len(pool)]
        if index is None:
            description, conclusion = service.abnormal.get(
                diag.code, (service.description, service.conclusion)
            )
            values = {
                "TEN_CHI_SO": service.name,
                "MO_TA": description,
                "KET_LUAN": conclusion,
            }
            ctx.results.append(f"{service.name}: {conclusion}")
        else:
            value = _lab_value(rng, index, diag.abnormal.get(index.code))
            values = {
                "MA_CHI_SO": index.code,
                "TEN_CHI_SO": index.name,
                "GIA_TRI": value,
                "DON_VI_DO": index.unit,
            }
            ctx.results.append(f"{index.name}: {value} {index.unit}".rstrip())
        rows.append(
            _row(
                "XML4",
                MA_LK=ctx.ma_lk,
                STT=str(position + 1),
                MA_DICH_VU=service.code,
                NGAY_KQ=done,
                MA_BS_DOC_KQ=rng.choice(cat.DOCTORS).licence,
                **values,
            )
        )
    return rows


_FEVER: Final = frozenset({"J18.9", "J06.9", "A09.0", "J20.9"})


def _vitals(ctx: _Context, first: bool) -> str:
    rng, code = ctx.rng, ctx.diagnosis.code
    fever = first and code in _FEVER
    temperature = rng.uniform(37.8, 39.2) if fever else rng.uniform(36.5, 37.2)
    if code == "I10" and first:
        systolic, diastolic = rng.randint(150, 175), rng.randint(90, 105)
    else:
        systolic, diastolic = rng.randint(105, 135), rng.randint(65, 85)
    low_oxygen = code in ("J18.9", "J44.9", "J45.9") and first
    oxygen = rng.randint(91, 95) if low_oxygen else rng.randint(96, 99)
    return (
        f"M: {rng.randint(68, 104)} l/p, T: {temperature:.1f}°C, "
        f"HA: {systolic}/{diastolic} mmHg, NT: {rng.randint(16, 22)} l/p, SpO2: {oxygen}%"
    )


def _note_rows(ctx: _Context, count: int) -> list[dict[str, str]]:
    rng, diag = ctx.rng, ctx.diagnosis
    rows = []
    for position in range(count):
        low = position / max(count, 1)
        at = ctx.when(low, low + 0.8 / max(count, 1))
        if position == 0:
            text = (
                f"Người bệnh tỉnh, tiếp xúc tốt. Lý do: {diag.reason.lower()}. "
                f"{_vitals(ctx, True)}. Khám: {diag.findings}."
            )
        elif position == count - 1:
            text = (
                f"Người bệnh ổn định, {_vitals(ctx, False)}. Chẩn đoán: {ctx.diagnosis_text}. "
                f"Hướng điều trị: {diag.plan.lower()}. Dặn dò: {diag.advice}"
            )
        elif ctx.inpatient:
            text = (
                f"Ngày điều trị thứ {min(position + 1, max(ctx.days, 1))}: người bệnh đỡ "
                f"{diag.reason.split(',')[0].lower()}, ăn ngủ được. {_vitals(ctx, False)}."
            )
        else:
            text = (
                f"Chỉ định xét nghiệm và chẩn đoán hình ảnh. {_vitals(ctx, False)}. "
                "Người bệnh chờ kết quả cận lâm sàng."
            )
        rows.append(
            _row(
                "XML5",
                MA_LK=ctx.ma_lk,
                STT=str(position + 1),
                DIEN_BIEN_LS=text,
                THOI_DIEM_DBLS=moment(at),
                NGUOI_THUC_HIEN=rng.choice((ctx.doctor, *cat.DOCTORS[:2])).licence,
            )
        )
    return rows


def _sum(rows: list[dict[str, str]], name: str, keep: Callable[[dict[str, str]], bool]) -> str:
    return money(sum((Decimal(r[name]) for r in rows if keep(r)), _ZERO))


def _history(ctx: _Context) -> str:
    patient, diag = ctx.patient, ctx.diagnosis
    age = _age(patient.birth, ctx.start.date())
    who = "Nam" if patient.sex == 1 else "Nữ"
    came = "vào viện" if ctx.inpatient else "đến khám"
    return (
        f"{who}, {age} tuổi, {came} vì {diag.reason.lower()}. Bệnh diễn biến "
        f"{ctx.rng.randint(1, 7)} ngày trước khi {came}. Khám: {diag.findings}."
    )


def _treatment(ctx: _Context, drugs: list[dict[str, str]]) -> str:
    names = [r["TEN_THUOC"] for r in drugs[:4]]
    plan = ctx.diagnosis.plan
    return f"{plan}: {', '.join(names)}" if names else plan


def make_visit(
    rng: Random,
    *,
    facility_code: str = "01001",
    ended: datetime | None = None,
    care_type: str | None = None,
    insured: bool | None = None,
    defect: str | None = None,
    drugs: int | None = None,
    services: int | None = None,
    labs: int | None = None,
    notes: int | None = None,
    sequence: int | None = None,
    referral: bool | None = None,
    appointment: bool | None = None,
    age_group: int | None = None,
) -> SynthVisit:
    """One visit drawn from ``rng`` (same state, same arguments -> same visit).

    Counts left as None give a typical visit: 8 drugs (XML2), 12 services (XML3), 10 results
    (XML4) and 3 notes (XML5); uninsured visits default to no results and no notes. ``sequence``
    makes MA_LK unique (facility + NGAY_VAO day + 6-digit sequence); without it 8 random digits
    are used. ``referral`` forces or forbids XML13 (inpatients 03/04, insured);
    ``appointment`` forces or forbids XML14 (insured outpatients 01/02/07). ``age_group``
    0..4 picks the age bracket 0-5, 6-17, 18-39, 40-59, 60-85. ``defect`` is one of
    :data:`DEFECTS`; the visit then breaks that rule only.
    """
    if defect is not None and defect not in DEFECTS:
        raise ValueError(f"unknown defect {defect!r}; expected one of {', '.join(DEFECTS)}")
    if care_type is not None and care_type not in CARE_TYPES:
        raise ValueError(f"care type {care_type!r} not simulated; expected one of {CARE_TYPES}")
    for name, value in (("drugs", drugs), ("services", services), ("labs", labs),
                        ("notes", notes)):  # fmt: skip
        if value is not None and value < 0:
            raise ValueError(f"{name} must not be negative")
    if age_group is not None and not 0 <= age_group < len(_AGE_BRACKETS):
        raise ValueError(f"age_group must be 0..{len(_AGE_BRACKETS) - 1}")
    if defect == "bad_card" and insured is False:
        raise ValueError("the bad_card defect needs an insured visit")
    care = care_type or _weighted(rng, CARE_MIX)
    if insured is None:
        insured = defect == "bad_card" or rng.random() < INSURED_SHARE
    drug_count = TYPICAL_DRUGS if drugs is None else drugs
    if defect in ("wrong_line_amount", "mismatched_ma_lk") and drug_count == 0:
        raise ValueError(f"the {defect} defect needs at least one drug row")
    if referral and (care not in ("03", "04") or not insured):
        raise ValueError("a referral (XML13) is simulated for insured inpatients (03/04) only")
    if appointment and (care not in ("01", "02", "07") or not insured):
        raise ValueError("an appointment (XML14) is simulated for insured outpatients only")

    start, end, admitted = _times(rng, care, ended)
    patient = _patient(rng, start, end, insured, age_group)
    age = _age(patient.birth, start.date())
    diagnosis, secondary = _choose_diagnosis(rng, care, age)
    child = age < 16
    if care in ("01", "07"):
        department = cat.OUTPATIENT_DEPARTMENT
    else:
        department = diagnosis.department_child if child else diagnosis.department
    suffix = f"{sequence:06d}" if sequence is not None else f"{rng.randrange(10**8):08d}"
    ctx = _Context(
        rng=rng,
        facility=facility_code,
        care=care,
        insured=insured,
        start=start,
        end=end,
        admitted=admitted,
        patient=patient,
        diagnosis=diagnosis,
        secondary=secondary,
        doctor=rng.choice(cat.DOCTORS),
        department=department,
        ma_lk=f"{facility_code}{start:%Y%m%d}{suffix}",
        defect=defect,
        child=child,
    )
    if referral is None:
        referral = insured and care == "03" and rng.random() < 0.12
    if appointment is None:
        appointment = insured and care in ("01", "02") and rng.random() < 0.3

    tables: dict[str, list[dict[str, str]]] = {}
    drug_rows = _drug_rows(ctx, drug_count)
    service_rows = _service_rows(ctx, TYPICAL_SERVICES if services is None else services)
    if defect == "wrong_line_amount":
        _wrong_line_amount(rng, drug_rows, patient.benefit)
    result_count = labs if labs is not None else (TYPICAL_LABS if insured else 0)
    note_count = notes if notes is not None else (TYPICAL_NOTES if insured else 0)
    result_rows = _result_rows(ctx, result_count, service_rows) if result_count else []
    note_rows = _note_rows(ctx, note_count)

    target = ""
    if referral:
        target = rng.choice([f for f in cat.HANOI_FACILITIES if f != facility_code])
    revisit = end + timedelta(days=rng.randint(7, 30)) if appointment else None
    summary = _summary(ctx, drug_rows, service_rows, target, revisit)
    tables["XML1"] = [summary]
    if drug_rows:
        tables["XML2"] = drug_rows
    if service_rows:
        tables["XML3"] = service_rows
    if result_rows:
        tables["XML4"] = result_rows
    if note_rows:
        tables["XML5"] = note_rows
    if care == "03" and insured:  # uninsured visits: XML1 + XML8 (+ XML2/XML3) only
        tables["XML7"] = [_discharge_paper(ctx, summary)]
    tables["XML8"] = [_record_summary(ctx, summary)]
    if referral:
        tables["XML13"] = [_referral(ctx, summary, service_rows, drug_rows)]
    if revisit is not None:
        tables["XML14"] = [_appointment(ctx, summary, revisit)]
    if defect is not None:
        _apply_defect(ctx, tables)
    return SynthVisit(
        ma_lk=ctx.ma_lk,
        tables=tables,
        defect=defect,
        insured=insured,
        care_type=care,
        ended=end,
    )


def _summary(
    ctx: _Context,
    drugs: list[dict[str, str]],
    services: list[dict[str, str]],
    target: str,
    revisit: datetime | None,
) -> dict[str, str]:
    rng, patient, diag = ctx.rng, ctx.patient, ctx.diagnosis
    lines = drugs + services

    def always(_: dict[str, str]) -> bool:
        return True

    def supplies(row: dict[str, str]) -> bool:
        return row["MA_NHOM"] in ("10", "11")

    if target:
        result, discharge = rng.choice(("3", "4")), "2"
    elif ctx.inpatient:
        result, discharge = _weighted(rng, (("1", 3), ("2", 6), ("3", 1))), "1"
    else:
        result, discharge = _weighted(rng, (("1", 1), ("2", 8), ("7", 1))), "1"
    if not ctx.insured:
        category = "9"
    elif ctx.care in ("03", "09") and rng.random() < 0.25:
        category = "2"  # emergency
    else:
        category = "1.1"
    inpatient_reason = (
        f"{diag.reason}; {diag.first_impression.lower()}" if ctx.admitted is not None else ""
    )
    return _row(
        "XML1",
        MA_LK=ctx.ma_lk,
        MA_BN=patient.code,
        HO_TEN=patient.name,
        SO_CCCD=patient.personal_id,
        NGAY_SINH=f"{day(patient.birth)}0000",
        GIOI_TINH=str(patient.sex),
        NHOM_MAU=patient.blood,
        MA_QUOCTICH="000",
        MA_DANTOC=patient.ethnicity,
        MA_NGHE_NGHIEP="00000",
        DIA_CHI=patient.address,
        MATINH_CU_TRU=cat.PROVINCE_CODE,
        MAHUYEN_CU_TRU="",  # no district level since 1 July 2025
        MAXA_CU_TRU=patient.ward,
        DIEN_THOAI=patient.phone,
        MA_THE_BHYT=patient.card,
        MA_DKBD=patient.primary_facility,
        GT_THE_TU=patient.card_from,
        GT_THE_DEN=patient.card_to,
        LY_DO_VV=diag.reason,
        LY_DO_VNT=inpatient_reason,
        CHAN_DOAN_VAO=diag.first_impression,
        CHAN_DOAN_RV=ctx.diagnosis_text,
        MA_BENH_CHINH=diag.code,
        MA_BENH_KT=";".join(d.code for d in ctx.secondary),
        MA_DOITUONG_KCB=category,
        MA_NOI_DEN=target,
        NGAY_VAO=moment(ctx.start),
        NGAY_VAO_NOI_TRU=moment(ctx.admitted) if ctx.admitted else "",
        NGAY_RA=moment(ctx.end),
        SO_NGAY_DTRI=str(ctx.days),
        PP_DIEU_TRI=_treatment(ctx, drugs),
        KET_QUA_DTRI=result,
        MA_LOAI_RV=discharge,
        GHI_CHU=diag.advice,
        NGAY_TTOAN=moment(ctx.end),
        T_THUOC=_sum(drugs, "THANH_TIEN_BV", always),
        T_VTYT=_sum(services, "THANH_TIEN_BV", supplies),
        T_TONGCHI_BV=_sum(lines, "THANH_TIEN_BV", always),
        T_TONGCHI_BH=_sum(lines, "THANH_TIEN_BH", always),
        T_BNTT=_sum(lines, "T_BNTT", always),
        T_BNCCT=_sum(lines, "T_BNCCT", always),
        T_BHTT=_sum(lines, "T_BHTT", always),
        T_NGUONKHAC=_sum(lines, "T_NGUONKHAC", always),
        T_BHTT_GDV=_sum(lines, "T_BHTT", lambda r: r["MA_PTTT"] == "1"),
        NAM_QT=str(ctx.end.year),
        THANG_QT=str(ctx.end.month),
        MA_LOAI_KCB=ctx.care,
        MA_KHOA=ctx.department,
        MA_CSKCB=ctx.facility,
        CAN_NANG=patient.weight,
        NGAY_TAI_KHAM=day(revisit.date()) if revisit else "",
        MA_HSBA=f"{'BA' if ctx.inpatient else 'PK'}{ctx.start:%y}{rng.randrange(10**6):06d}",
        MA_TTDV=ctx.head,
    )


def _discharge_paper(ctx: _Context, summary: dict[str, str]) -> dict[str, str]:
    rng, patient = ctx.rng, ctx.patient
    head = cat.DOCTORS[cat.DEPARTMENT_HEADS.get(ctx.department, 0)]
    leave: dict[str, str] = {}
    if patient.employer and rng.random() < 0.4:
        rest = rng.randint(3, 10)
        first = ctx.end.date() + timedelta(days=1)
        leave = {
            "SO_NGAY_NGHI": str(rest),
            "NGOAITRU_TUNGAY": day(first),
            "NGOAITRU_DENNGAY": day(first + timedelta(days=rest - 1)),
        }
    return _row(
        "XML7",
        MA_LK=ctx.ma_lk,
        SO_LUU_TRU=f"{ctx.end.year}/{rng.randrange(10**5):05d}-{_serial(ctx)}",
        MA_YTE=patient.code,
        MA_KHOA_RV=ctx.department,
        NGAY_VAO=summary["NGAY_VAO"],
        NGAY_RA=summary["NGAY_RA"],
        CHAN_DOAN_RV=summary["CHAN_DOAN_RV"][:1500],
        PP_DIEUTRI=summary["PP_DIEU_TRI"][:1500],
        GHI_CHU=ctx.diagnosis.advice,
        MA_TTDV=ctx.head,
        MA_BS=head.social_insurance,
        TEN_BS=head.name,
        NGAY_CT=day(ctx.end.date()),
        HO_TEN_CHA=patient.father,
        HO_TEN_ME=patient.mother,
        **leave,
    )


def _record_summary(ctx: _Context, summary: dict[str, str]) -> dict[str, str]:
    patient = ctx.patient
    results = "; ".join(ctx.results[:8]) or "Không làm xét nghiệm cận lâm sàng"
    return _row(
        "XML8",
        MA_LK=ctx.ma_lk,
        MA_LOAI_KCB=ctx.care,
        HO_TEN_CHA=patient.father,
        HO_TEN_ME=patient.mother,
        DON_VI=patient.employer,
        NGAY_VAO=summary["NGAY_VAO"],
        NGAY_RA=summary["NGAY_RA"],
        CHAN_DOAN_VAO=summary["CHAN_DOAN_VAO"],
        CHAN_DOAN_RV=summary["CHAN_DOAN_RV"],
        QT_BENHLY=_history(ctx),
        TOMTAT_KQ=results,
        PP_DIEUTRI=summary["PP_DIEU_TRI"],
        KET_QUA_DTRI=summary["KET_QUA_DTRI"],
        GHI_CHU=summary["GHI_CHU"],
        MA_TTDV=ctx.head,
        NGAY_CT=day(ctx.end.date()),
    )


def _referral(
    ctx: _Context,
    summary: dict[str, str],
    services: list[dict[str, str]],
    drugs: list[dict[str, str]],
) -> dict[str, str]:
    rng, patient = ctx.rng, ctx.patient
    number = rng.randint(1, 2999)
    service_names = "; ".join(r["TEN_DICH_VU"] for r in services if r["TEN_DICH_VU"])[:1024]
    drug_names = "; ".join(r["TEN_THUOC"] for r in drugs)[:1024]
    paper = f"{number}-{_serial(ctx)}/{ctx.end.year}/GCT"
    return _row(
        "XML13",
        MA_LK=ctx.ma_lk,
        SO_HOSO=f"HS{ctx.end.year}{rng.randrange(10**6):06d}",
        SO_CHUYENTUYEN=f"{number}/{ctx.end.year}",
        GIAY_CHUYEN_TUYEN=paper,
        MA_CSKCB=ctx.facility,
        MA_NOI_DI=summary["MA_NOI_DI"],
        MA_NOI_DEN=summary["MA_NOI_DEN"],
        MA_CSKCB_DI=summary["MA_NOI_DI"],
        MA_CSKCB_DEN=summary["MA_NOI_DEN"],
        HO_TEN=patient.name,
        NGAY_SINH=summary["NGAY_SINH"],
        GIOI_TINH=summary["GIOI_TINH"],
        MA_QUOCTICH=summary["MA_QUOCTICH"],
        MA_DANTOC=summary["MA_DANTOC"],
        MA_NGHE_NGHIEP=summary["MA_NGHE_NGHIEP"],
        DIA_CHI=patient.address,
        MA_THE_BHYT=patient.card,
        GT_THE_DEN=patient.card_to,
        NGAY_VAO=summary["NGAY_VAO"],
        NGAY_VAO_NOI_TRU=summary["NGAY_VAO_NOI_TRU"],
        NGAY_RA=summary["NGAY_RA"],
        DAU_HIEU_LS=f"{ctx.diagnosis.reason}; {_vitals(ctx, True)}",
        CHAN_DOAN_RV=summary["CHAN_DOAN_RV"],
        QT_BENHLY=_history(ctx),
        TOMTAT_KQ="; ".join(ctx.results[:8]) or "Chưa có kết quả cận lâm sàng",
        PP_DIEUTRI=summary["PP_DIEU_TRI"],
        MA_BENH_CHINH=ctx.diagnosis.code,
        MA_BENH_KT=summary["MA_BENH_KT"],
        TEN_DICH_VU=service_names or "Khám bệnh",
        TEN_THUOC=drug_names,
        PP_DIEU_TRI=summary["PP_DIEU_TRI"],
        MA_LOAI_RV=summary["MA_LOAI_RV"],
        MA_LYDO_CT=rng.choice(("1", "2")),
        HUONG_DIEU_TRI="Chuyển tuyến trên tiếp tục chẩn đoán và điều trị chuyên khoa",
        PHUONGTIEN_VC="Xe cứu thương",
        HOTEN_NGUOI_HT=f"{rng.choice(cat.FAMILY_NAMES)[0]} Thị {rng.choice(cat.FEMALE_GIVEN)}",
        CHUCDANH_NGUOI_HT="Điều dưỡng",
        MA_BAC_SI=ctx.doctor.licence,
        MA_TTDV=ctx.head,
        TINH_TRANG_CT="Người bệnh tỉnh, dấu hiệu sinh tồn ổn định khi chuyển",
    )


def _serial(ctx: _Context) -> str:
    """The part of a paper's number that makes it the visit's own (a paper number belongs to
    one visit of a facility, D69; a real HIS numbers its papers in sequence): MA_LK without
    the facility code (the day and the visit's sequence)."""
    return ctx.ma_lk[len(ctx.facility) :]


def _appointment(ctx: _Context, summary: dict[str, str], revisit: datetime) -> dict[str, str]:
    patient = ctx.patient
    return _row(
        "XML14",
        MA_LK=ctx.ma_lk,
        SO_GIAYHEN_KL=f"{ctx.rng.randint(1, 9999)}-{_serial(ctx)}/{ctx.end.year}/GHKL",
        MA_CSKCB=ctx.facility,
        HO_TEN=patient.name,
        NGAY_SINH=summary["NGAY_SINH"],
        GIOI_TINH=summary["GIOI_TINH"],
        DIA_CHI=patient.address,
        MA_THE_BHYT=patient.card,
        GT_THE_DEN=patient.card_to,
        NGAY_VAO=summary["NGAY_VAO"],
        NGAY_VAO_NOI_TRU=summary["NGAY_VAO_NOI_TRU"],
        NGAY_RA=summary["NGAY_RA"],
        NGAY_HEN_KL=moment(datetime.combine(revisit.date(), time(7, 30))),
        CHAN_DOAN_RV=summary["CHAN_DOAN_RV"],
        MA_BENH_CHINH=summary["MA_BENH_CHINH"],
        MA_BENH_KT=summary["MA_BENH_KT"],
        MA_DOITUONG_KCB=summary["MA_DOITUONG_KCB"],
        MA_BAC_SI=ctx.doctor.licence,
        MA_TTDV=ctx.head,
        NGAY_CT=day(ctx.end.date()),
    )


# ------------------------------------------------------------------ defects


def _wrong_line_amount(rng: Random, rows: list[dict[str, str]], benefit: int) -> None:
    """One drug row whose THANH_TIEN_BV is 1000 too much; everything computed from the line
    amount (insured share, fund, co-payment, totals) follows it, so only the product breaks."""
    row = rng.choice(rows)
    amount = Decimal(row["THANH_TIEN_BV"]) + 1000
    row.update(_Money.split(amount, int(row["TYLE_TT_BH"]), benefit).fields())


def _apply_defect(ctx: _Context, tables: dict[str, list[dict[str, str]]]) -> None:
    rng, summary = ctx.rng, tables["XML1"][0]
    defect = ctx.defect
    if defect == "missing_required":
        summary["HO_TEN"] = ""
    elif defect == "bad_date":
        summary["NGAY_VAO"] = summary["NGAY_VAO"][:4] + "13" + summary["NGAY_VAO"][6:]
    elif defect == "ngay_ra_before_ngay_vao":
        # Same calendar day, a little earlier: only the order breaks (day counts stay right).
        of_day = ctx.start.hour * 60 + ctx.start.minute
        early = ctx.start - timedelta(minutes=min(rng.randint(5, 60), max(of_day, 1)))
        summary["NGAY_RA"] = summary["NGAY_TTOAN"] = moment(early)
        summary["NAM_QT"], summary["THANG_QT"] = str(early.year), str(early.month)
        summary["SO_NGAY_DTRI"] = str(treatment_days(ctx.care, ctx.start, early))
    elif defect == "bad_icd":
        summary["MA_BENH_CHINH"] = BAD_ICD
    elif defect == "wrong_total":
        summary["T_TONGCHI_BV"] = money(Decimal(summary["T_TONGCHI_BV"]) + 1000)
    elif defect == "wrong_bhtt":
        summary["T_BHTT"] = money(Decimal(summary["T_BHTT"]) + 500)
    elif defect == "bad_cccd_sex":
        number = summary["SO_CCCD"]
        summary["SO_CCCD"] = number[:3] + str(int(number[3]) ^ 1) + number[4:]
    elif defect == "bad_card":
        card = summary["MA_THE_BHYT"]
        summary["MA_THE_BHYT"] = card[:2] + "7" + card[3:]
    elif defect == "mismatched_ma_lk":
        row = rng.choice(tables["XML2"])
        key = row["MA_LK"]
        row["MA_LK"] = key[:-1] + str((int(key[-1]) + rng.randint(1, 9)) % 10)
    elif defect == "wrong_so_ngay_dtri":
        summary["SO_NGAY_DTRI"] = str(int(summary["SO_NGAY_DTRI"]) + rng.randint(1, 3))
    elif defect == "bad_care_type":
        summary["MA_LOAI_KCB"] = BAD_CARE_TYPE
    elif defect == "facility_mismatch":
        summary["MA_CSKCB"] = rng.choice([f for f in cat.HANOI_FACILITIES if f != ctx.facility])
    elif defect == "too_long":
        words = " ".join([ctx.patient.name] * (TOO_LONG // len(ctx.patient.name) + 2))
        text = words[:TOO_LONG]
        summary["HO_TEN"] = text if not text.endswith(" ") else text[:-1] + "A"
    # The papers repeat XML1 (XML13, XML14): a facility's defect is in its copies too, so the
    # defect is caught by its own rule, not also as a copy that differs (SUB-0147; for the
    # referral's destination, main diagnosis and discharge, PAP-0111).
    for name, fields in {
        **SAME_AS_XML1,
        "XML13": {**SAME_AS_XML1["XML13"], **_REFERRAL_COPIES},
    }.items():
        for row in tables.get(name) or []:
            for copy_field, source in fields.items():
                if row.get(copy_field):
                    row[copy_field] = summary.get(source, "")
