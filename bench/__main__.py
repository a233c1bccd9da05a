"""Run every benchmark and print a Markdown table per benchmark."""

from __future__ import annotations

import asyncio
import sys

from bench import audit, catalog_http, exchange, fhir, intake, papers, report


def main() -> None:
    wanted = sys.argv[1:] or [
        "catalog", "intake", "exchange", "fhir", "papers", "report", "report-accounts",
        "report-facilities", "audit",
    ]  # fmt: skip
    if "catalog" in wanted:
        asyncio.run(catalog_http.main())
    if "intake" in wanted:
        asyncio.run(intake.main())
    if "exchange" in wanted:
        asyncio.run(exchange.main())
    if "fhir" in wanted:
        asyncio.run(fhir.main())
    if "papers" in wanted:
        asyncio.run(papers.main())
    if "report" in wanted:
        asyncio.run(report.main())
    if "report-accounts" in wanted:
        asyncio.run(report.accounts_main())
    if "report-facilities" in wanted:
        asyncio.run(report.facilities_main())
    if "audit" in wanted:
        asyncio.run(audit.main())


main()
