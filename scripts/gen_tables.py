"""Regenerate src/vnehr/submissions/data/tables.json from the national field tables.

Reads Appendix A of ../shared/domain/vn-health-data.md (field name, type, maximum size,
required mark and the QĐ 4750 corrections) and writes only those facts of the standard.
Run: python scripts/gen_tables.py
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT.parent / "shared" / "domain" / "vn-health-data.md"
TARGET = ROOT / "src" / "vnehr" / "submissions" / "data" / "tables.json"

HEADING = re.compile(r"^#### (XML\d+)\b.*?—\s*(.*)$")
ROW = re.compile(
    r"^\| (\d+) \| `([A-Z0-9_]+)` \| ([^|]*) \| ([^|]*) \| ([^|]*) \| ([^|]*) \| ([^|]*) \|"
)
INLINE = re.compile(r"`([A-Z0-9_]+)` \((Chuỗi|Số) (\w+)\)")
GROW = re.compile(r"Tăng kích thước tối đa lên (\d+)")


def _structure(text: str) -> dict[str, str | None]:
    tags = re.findall(r"`([A-Z0-9_]+)`", text)
    if not tags:
        return {"root": None, "list": None, "row": None}
    if "flat" in text or len(tags) == 1:
        return {"root": tags[0] if tags else None, "list": None, "row": None}
    return {"root": tags[0], "list": tags[1], "row": tags[2]}


def _field(name: str, kind: str, size: str, required: bool, correction: str) -> dict[str, object]:
    number = kind.strip() == "Số" and "thành chuỗi" not in correction
    grown = GROW.search(correction)
    maximum = None if size.strip() in ("n", "") else int(size.strip())
    if grown:
        maximum = int(grown.group(1))
    return {
        "name": name,
        "type": "number" if number else "string",
        "max": maximum,
        "required": required,
    }


def main() -> None:
    tables: dict[str, dict[str, object]] = {}
    current: str | None = None
    for line in SOURCE.read_text(encoding="utf-8").splitlines():
        heading = HEADING.match(line)
        if heading:
            current = heading.group(1)
            tables[current] = {**_structure(heading.group(2)), "fields": []}
            continue
        if current is None:
            continue
        fields: list[dict[str, object]] = tables[current]["fields"]  # type: ignore[assignment]
        row = ROW.match(line)
        if row:
            _, name, kind, size, req, _meaning, correction = row.groups()
            fields.append(_field(name, kind, size, req.strip() == "x", correction))
        elif line.startswith("Fields (type, max):"):
            for name, kind, size in INLINE.findall(line):
                fields.append(_field(name, kind, size, name == "MA_LK", ""))
    # Repeating tables carry a sequence number STT after MA_LK (BHXH templates; field 2 of the
    # check-in sheet), although the 4750 appendix sheets do not list it.
    for spec in tables.values():
        names = [f["name"] for f in spec["fields"]]  # type: ignore[union-attr]
        if spec["row"] and "STT" not in names:
            position = 1 if names and names[0] == "MA_LK" else 0
            spec["fields"].insert(  # type: ignore[union-attr]
                position, {"name": "STT", "type": "number", "max": 10, "required": False}
            )
    # QĐ 3176 changes only XML13 (SRC-QLBV XmlStructures::$expectedStructures3176).
    xml13 = [dict(f) for f in tables["XML13"]["fields"]]  # type: ignore[union-attr]
    renamed = {"MA_NOI_DI": "MA_CSKCB_DI", "MA_NOI_DEN": "MA_CSKCB_DEN"}
    variant = []
    for f in xml13:
        if f["name"] in ("TEN_DICH_VU", "TEN_THUOC", "PP_DIEU_TRI"):
            continue
        variant.append({**f, "name": renamed.get(str(f["name"]), f["name"])})
    names = [f["name"] for f in variant]
    if "TINH_TRANG_CT" not in names:
        variant.insert(
            len(variant) - 1 if names[-1] == "DU_PHONG" else len(variant),
            {"name": "TINH_TRANG_CT", "type": "string", "max": None, "required": False},
        )
    if "DU_PHONG" not in names:
        variant.append({"name": "DU_PHONG", "type": "string", "max": None, "required": False})
    tables["XML13_3176"] = {**tables["XML13"], "fields": variant}
    TARGET.parent.mkdir(parents=True, exist_ok=True)
    TARGET.write_text(json.dumps(tables, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    for name, spec in tables.items():
        print(f"{name:<11} {spec['root']!s:<66} {len(spec['fields'])} fields", file=sys.stderr)  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
