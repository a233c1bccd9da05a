"""Whatever a facility system sends, the intake answers with its own codes, never a crash: a
few hundred generated files, each bent in a reproducible way (field values a careless or
hostile sender might put, fields dropped or repeated, rows dropped, bytes cut or flipped), go
through the same analysis the API runs. Each must come back as a file refused whole with a
stable code, or as visits whose every issue has a code and its Vietnamese and English text."""

from __future__ import annotations

import base64
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from vnehr import catalogs
from vnehr.kit.errors import VnehrError
from vnehr.kit.i18n import catalogue
from vnehr.submissions import Limits, synth
from vnehr.submissions.service import prepare, validation_report

#: Values that have broken parsers before: Unicode digits that ``int`` takes or refuses
#: ("٣", "²", "１２", "𝟙"), Python's number spellings ("1_000", "1e5", "inf", "NaN"),
#: impossible dates and moments, huge and tiny numbers, separators, invisible characters.
ODD_VALUES = [
    "", " ", "  x ", "abc", "-1", "0", "-0", "1e5", "NaN", "Infinity", "inf", "٣", "²", "1_000",
    " 12 ", "12.", ".5", "+5", "0x10", "１２", "𝟙", "20261301", "202612311260", "29990101",
    "20250229", "202502291200", "00000000", "000000000000", "99999999999999999999999999",
    "1" * 400, "x" * 3000, "1;2;3", ";;", ";", "A00;", "J18.9", "j189", "Z99.9;A00", "\u00a0",
    "\u200b", "\t", "1.123456789", "-0.0001", "1E-7", "10000000000000.5", "1,5", "20261231",
    "202612310000", "190001010000", "1", "2", "3", "9", "99", "100", "0.5", "-5", "true",
    "null", "001085004217", "0010850042171", "HC4010123456789", "DN4", "01001", "79", "ĐỖ",
    "<", "&amp;", "{0}", "{}",
]  # fmt: skip
UNFILLED = re.compile(r"\{[a-z_]+\}")  # a placeholder of the message left unfilled


def _bend_table(xml: bytes, rnd: random.Random) -> bytes:
    root = etree.fromstring(xml)
    leaves = [e for e in root.iter() if isinstance(e.tag, str) and len(e) == 0]
    for _ in range(rnd.randint(1, 6)):
        leaf = rnd.choice(leaves)
        parent = leaf.getparent()
        roll = rnd.random()
        if roll < 0.75:
            leaf.text = rnd.choice(ODD_VALUES)
        elif roll < 0.85 and parent is not None:
            parent.remove(leaf)
            leaves.remove(leaf)
        elif roll < 0.95 and parent is not None:
            parent.append(etree.fromstring(etree.tostring(leaf)))  # the field sent twice
        else:
            leaf.text = None
    if rnd.random() < 0.1:  # a row dropped
        rows = [r for r in root.iter() if len(r) and all(len(c) == 0 for c in r)]
        row = rnd.choice(rows) if rows else None
        if row is not None and row.getparent() is not None:
            row.getparent().remove(row)
    bent: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return bent


def _bend(data: bytes, rnd: random.Random) -> bytes:
    if rnd.random() < 0.1:  # the bytes themselves: cut short, or a few flipped
        raw = bytearray(data)
        if rnd.random() < 0.3:
            return bytes(raw[: rnd.randrange(len(raw))])
        for _ in range(rnd.randint(1, 5)):
            raw[rnd.randrange(len(raw))] = rnd.randrange(256)
        return bytes(raw)
    root = etree.fromstring(data)
    contents = root.findall(".//NOIDUNGFILE")
    for _ in range(rnd.randint(1, 3)):
        content = rnd.choice(contents)
        inner = _bend_table(base64.b64decode(content.text or ""), rnd)
        content.text = base64.b64encode(inner).decode("ascii")
    if rnd.random() < 0.05:  # the envelope's own fields
        leaf = rnd.choice([e for e in root.iter() if len(e) == 0])
        leaf.text = rnd.choice(ODD_VALUES)
    bent: bytes = etree.tostring(root, xml_declaration=True, encoding="utf-8")
    return bent


@pytest.fixture(scope="module")
def originals(tmp_path_factory: pytest.TempPathFactory) -> list[bytes]:
    folder = tmp_path_factory.mktemp("fuzz")
    synth.write_files(folder, 30, seed=11, facility_code="01001")
    return [p.read_bytes() for p in sorted(Path(folder).glob("*.xml"))]


def _outcome(data: bytes) -> tuple[VnehrError | None, dict[str, Any] | None]:
    try:
        analysis = prepare(data, codes=catalogs.offline(), limits=Limits())
    except VnehrError as exc:
        return exc, None
    return None, validation_report(analysis)  # (what /validate answers: it must serialise)


def _known(code: str) -> bool:
    return code in catalogue("vi") and code in catalogue("en")


def test_bent_files_get_codes_and_texts_never_a_crash(originals: list[bytes]) -> None:
    refused: Counter[str] = Counter()
    found: Counter[str] = Counter()
    with_issues = 0
    for n in range(400):
        rnd = random.Random(n)
        refusal, report = _outcome(_bend(rnd.choice(originals), rnd))
        if refusal is not None:  # refused whole: a code and both texts
            assert _known(refusal.code), (n, refusal.code)
            assert all(refusal.messages()[lang].strip() for lang in ("vi", "en")), n
            refused[refusal.code] += 1
            continue
        assert report is not None
        issues = [i for v in report["visits"] for i in v["issues"]]
        with_issues += bool(issues)
        for issue in issues:
            assert _known(issue["code"]), (n, issue)
            for lang in ("vi", "en"):
                assert issue["message"][lang].strip(), (n, issue)
                assert not UNFILLED.search(issue["message"][lang]), (n, issue)
            found[issue["code"]] += 1
        for visit in report["visits"]:
            errors = [i for i in visit["issues"] if i["severity"] == "error"]
            assert (visit["status"] == "rejected") == bool(errors), (n, visit["status"])
    # the bending reaches the checks: most files get issues, of many kinds
    assert with_issues + sum(refused.values()) > 300
    assert len(found) >= 15, found
    assert refused, "no file was refused whole: the byte bending did not reach the parser"
