"""Electronic papers: how fast a QR is verified, next to the bare ES256 signature check measured
in the same run (one core, one thread), then verifications with the status read from
PostgreSQL, papers issued per second, and signed PDFs per second.

    python -m bench papers
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from bench.common import postgres
from vnehr import catalogs, facilities
from vnehr.demo import demo_icd10_titles
from vnehr.kit.auth import Grant, Subject
from vnehr.kit.db import Database
from vnehr.kit.migrate import upgrade
from vnehr.papers import card, pdf, service, shc

SECONDS = 3.0
SECRET = "bench-secret-" + "b" * 40
ISSUER = "https://sskdt.hanoi.gov.vn"


def _rate(work: Callable[[], Any], seconds: float = SECONDS) -> float:
    """Calls per second of ``work`` over ``seconds`` (best of three slices)."""
    rates = []
    for _ in range(3):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds / 3:
            for _ in range(100):
                work()
            done += 100
        rates.append(done / elapsed)
    return max(rates)


def _content(number: int) -> dict[str, Any]:
    return {
        "kind": "driver",
        "number": f"01001.KSK.{number:06d}.26",
        "facility": {"code": "01001", "name": "Bệnh viện Đa khoa Xanh Pôn"},
        "holder": {
            "name": "Nguyễn Văn An",
            "birth_date": "1985-03-14",
            "sex": "male",
            "personal_id": "001085004217",
        },
        "doctor": {"id": "000123/HNO-CCHN", "name": "BS. Đỗ Thu Hà"},
        "signed_on": "2026-11-20",
        "valid_from": "2026-11-20",
        "valid_until": "2027-11-19",
        "facts": {
            "examined_on": "2026-11-20",
            "classes": ["B", "C1"],
            "drug_test": "negative",
            "alcohol": "negative",
            "conclusion": "fit",
            "conditions": None,
        },
    }


def offline() -> list[str]:
    keys = service.PaperKeys(shc.IssuerKey.from_secret(SECRET), ISSUER, pdf.HubAuthority(SECRET))
    jws = keys.card.sign(ISSUER, 1_795_000_000, card.bundle(_content(1)), keys.card.rid("p"))
    qr = shc.qr_text(jws)
    header, body, signature = jws.split(".")
    raw = shc.b64url_decode(signature)
    der = encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    message = f"{header}.{body}".encode()
    public = keys.card.public
    algorithm = ec.ECDSA(hashes.SHA256())

    bare = _rate(lambda: public.verify(der, message, algorithm))
    full = _rate(lambda: service.open_qr(keys, qr))
    signing = _rate(lambda: keys.card.sign(ISSUER, 1, card.bundle(_content(2)), "r"))
    return [
        f"| bare ES256 signature check (cryptography/OpenSSL), ceiling | {bare:,.0f} /s | |",
        f"| QR verified: shc:/ digits -> JWS -> signature -> inflate -> FHIR facts | "
        f"**{full:,.0f} /s** | **{full / bare:.0%}** of the ceiling (target 50 %, 5,000/s) |",
        f"| card signed (FHIR Bundle, DEFLATE, ES256) | {signing:,.0f} /s | |",
        f"| QR text length (driver's certificate) | {len(qr) - 5:,} digits | "
        f"JWS {len(jws)} chars (single QR limit 1,195) |",
    ]


async def with_postgres() -> list[str]:
    with postgres("vnehr_papers") as socket_dir:
        url = f"postgresql+asyncpg://postgres@/vnehr_papers?host={socket_dir}"
        await upgrade(url)
        db = Database.from_urls(url)
        try:
            return await _measure(db)
        finally:
            await db.dispose()


async def _measure(db: Database) -> list[str]:
    keys = service.PaperKeys(shc.IssuerKey.from_secret(SECRET), ISSUER, pdf.HubAuthority(SECRET))
    admin = Subject(kind="person", id="bench", name="bench", grants=(Grant("department_admin"),))
    async with db.session() as session:
        await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
        facility = await facilities.register(
            session,
            admin,
            facilities.FacilityCreate(
                name="Bệnh viện Đa khoa Xanh Pôn",
                kind=facilities.Kind.hospital,
                level=facilities.Level.specialised,
                ownership=facilities.Ownership.public,
                province_code="01",
            ),
        )
    system = Subject(
        kind="facility_system",
        id="bench",
        name="bench HIS",
        scopes=frozenset({"paper.write"}),
        facility_code=facility.code,
    )
    examined = date.today() - timedelta(days=1)  # noqa: DTZ011 - a date on the bench machine

    def body(n: int) -> dict[str, Any]:
        return {
            "number": f"B{n:07d}",
            "examined_on": examined,
            "classes": ["B"],
            "drug_test": "negative",
            "alcohol": "negative",
            "conclusion": "fit",
            "holder": {
                "personal_id": f"0010850{n % 100_000:05d}",
                "name": "Nguyễn Văn An",
                "birth_date": date(1985, 3, 14),
                "sex": "male",
            },
            "doctor_id": "000123/HNO-CCHN",
            "doctor_name": "BS. Đỗ Thu Hà",
        }

    issued, qrs = 0, []
    start = time.perf_counter()
    while time.perf_counter() - start < SECONDS or issued < 200:
        async with db.session() as session:
            paper, _ = await service.issue_driver(session, keys, system, body(issued))
            qrs.append(shc.qr_text(paper.jws))
        issued += 1
    issue_rate = issued / (time.perf_counter() - start)

    async def one_round() -> float:
        done, begun = 0, time.perf_counter()
        async with db.read_session() as session:
            while time.perf_counter() - begun < SECONDS:
                for qr in qrs[:100]:
                    verdict = await service.verify(session, keys, qr)
                    if not verdict["valid"]:
                        raise RuntimeError(f"a fresh paper did not verify: {verdict}")
                done += 100
        return done / (time.perf_counter() - begun)

    verify_rate = max([await one_round() for _ in range(2)])

    async with db.session() as session:
        paper, _ = await service.issue_driver(session, keys, system, body(issued + 1))
    timings = []
    for _ in range(5):
        begun = time.perf_counter()
        rendered = await asyncio.to_thread(
            pdf.render,
            paper.content,
            paper_id=paper.id,
            status="valid",
            qr_svg=shc.qr_svg(paper.jws),
        )
        await pdf.sign(rendered, pdf.signers_of(paper.content), keys.signing)
        timings.append(time.perf_counter() - begun)
    pdf_ms = statistics.median(timings) * 1000
    return [
        f"| papers issued (rules, FHIR Bundle, ES256 card, row + event + audit, commit each) | "
        f"**{issue_rate:,.0f} /s** | one connection, sequential |",
        f"| QR verified with the paper's status read from PostgreSQL (one connection) | "
        f"**{verify_rate:,.0f} /s** | |",
        f"| PDF rendered (WeasyPrint) and signed twice (pyHanko: doctor, facility) | "
        f"{pdf_ms:,.0f} ms each | {1000 / pdf_ms:,.1f} /s |",
    ]


async def main() -> None:
    print(f"Electronic papers, one core, {SECONDS:.0f} s per row\n")
    print("| what | figure | note |")
    print("|---|---|---|")
    print("\n".join(offline()))
    print("\n".join(await with_postgres()))


if __name__ == "__main__":
    asyncio.run(main())
