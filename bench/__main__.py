"""Run every benchmark and print a Markdown table per benchmark."""

from __future__ import annotations

import asyncio

from bench import catalog_http


def main() -> None:
    asyncio.run(catalog_http.main())


main()
