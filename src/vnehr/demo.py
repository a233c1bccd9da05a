"""Demo data for a fresh embedded install: reference catalogues plus example content.

Catalogues are real reference data (also loaded in production with ``vnehr catalog load``);
demo content is what makes a new install show something. Later contexts add their own demo
loaders here.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession

from vnehr import catalogs


def demo_icd10_titles() -> Path:
    """A short Vietnamese title file for common ICD-10 codes (demo; production loads the full
    QĐ 4469 list with ``vnehr catalog load icd10 --titles-vi FILE``)."""
    return Path(str(resources.files("vnehr.catalogs").joinpath("data", "icd10_vi_demo.csv")))


async def is_empty(session: AsyncSession) -> bool:
    return not await catalogs.list_catalogs(session)


async def load(session: AsyncSession) -> dict[str, int]:
    """Load everything a demo needs, in the caller's transaction."""
    return await catalogs.load_builtin(session, icd10_titles_vi=demo_icd10_titles())
