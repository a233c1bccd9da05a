"""Realistic synthetic visit files of the national XML (QĐ 130 as amended by 4750/3176),
deterministic by seed.

A visit (:class:`SynthVisit`, one HOSO) holds the rows of every table it has (XML1, XML2, XML3,
XML4, XML5, XML7 for inpatients, XML8, sometimes XML13 or XML14) as the exact strings to write.
:func:`make_visit` draws one from a ``random.Random``; :func:`table_document` writes the inner
document of one table; :func:`envelope` wraps visits into the GIAMDINHHS document of §1.1;
:func:`write_files` writes a directory of files plus a manifest.

A visit is clean (passes every format, code, identity and money rule of the tables) or carries
exactly one defect of :data:`DEFECTS`. Money is computed with ``Decimal``: unit prices rounded
to 3 decimals, amounts to 2 (``ROUND_HALF_UP``), written without exponent.

Documents are UTF-8, fields in the order of ``data/tables.json``; required fields are always
written (``<NAME/>`` when empty), empty optional fields are omitted, free text is in CDATA.

Command line: ``python -m vnehr.submissions.synth OUTDIR --count N --seed S --defect-rate R``.
"""

from vnehr.submissions.synth._files import MANIFEST, main, write_files
from vnehr.submissions.synth._visit import (
    CARE_TYPES,
    DEFECTS,
    SynthVisit,
    head_of_facility,
    make_visit,
    treatment_days,
)
from vnehr.submissions.synth._xml import (
    FREE_TEXT_FIELDS,
    envelope,
    row_fields,
    table_document,
    table_spec,
)

__all__ = [
    "CARE_TYPES",
    "DEFECTS",
    "FREE_TEXT_FIELDS",
    "MANIFEST",
    "SynthVisit",
    "envelope",
    "head_of_facility",
    "main",
    "make_visit",
    "row_fields",
    "table_document",
    "table_spec",
    "treatment_days",
    "write_files",
]
