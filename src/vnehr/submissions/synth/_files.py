"""Whole files on disk: ``write_files`` and the ``python -m vnehr.submissions.synth`` command."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from random import Random

from vnehr.submissions.synth._visit import DEFECTS, SynthVisit, make_visit
from vnehr.submissions.synth._xml import VARIANTS, envelope

MANIFEST = "manifest.json"


def write_files(
    directory: Path,
    count: int,
    *,
    seed: int = 1,
    facility_code: str = "01001",
    defect_rate: float = 0.0,
    visits_per_file: int = 1,
    variant: str = "4750",
) -> Path:
    """Write ``count`` GIAMDINHHS files of ``visits_per_file`` visits each into ``directory``
    (created if needed), plus ``manifest.json``; return the manifest's path.

    Files are named ``GIAMDINHHS_<facility>_<n>.xml`` (n from 1, zero-padded to 5 digits).
    ``round(defect_rate x visits)`` visits, chosen at random, carry one defect each, drawn
    uniformly from :data:`DEFECTS`; the others are clean. The manifest maps each file name to
    the list of its visits ``{"ma_lk", "defect", "insured", "care_type"}`` in HOSO order. The
    same arguments always write the same bytes.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    if visits_per_file < 1:
        raise ValueError("visits_per_file must be at least 1")
    if not 0.0 <= defect_rate <= 1.0:
        raise ValueError("defect_rate must be between 0 and 1")
    rng = Random(seed)  # noqa: S311  (synthetic test data, not security)
    total = count * visits_per_file
    defective = set(rng.sample(range(total), round(defect_rate * total)))
    width = max(5, len(str(count)))
    directory.mkdir(parents=True, exist_ok=True)
    manifest: dict[str, list[dict[str, object]]] = {}
    sequence = 0
    for number in range(1, count + 1):
        visits: list[SynthVisit] = []
        for _ in range(visits_per_file):
            defect = rng.choice(DEFECTS) if sequence in defective else None
            sequence += 1
            visits.append(
                make_visit(rng, facility_code=facility_code, defect=defect, sequence=sequence)
            )
        name = f"GIAMDINHHS_{facility_code}_{number:0{width}d}.xml"
        (directory / name).write_bytes(envelope(visits, facility_code, variant=variant))
        manifest[name] = [
            {
                "ma_lk": v.ma_lk,
                "defect": v.defect,
                "insured": v.insured,
                "care_type": v.care_type,
            }
            for v in visits
        ]
    path = directory / MANIFEST
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m vnehr.submissions.synth OUTDIR --count N --seed S --defect-rate R``."""
    parser = argparse.ArgumentParser(
        prog="python -m vnehr.submissions.synth",
        description="Write synthetic GIAMDINHHS visit files (QĐ 130/4750/3176) and a manifest.",
    )
    parser.add_argument("outdir", type=Path, help="directory to write into (created if needed)")
    parser.add_argument("--count", type=int, default=10, help="number of files (default 10)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument(
        "--defect-rate", type=float, default=0.0, help="share of defective visits, 0..1"
    )
    parser.add_argument("--facility", default="01001", help="facility code MACSKCB")
    parser.add_argument("--visits-per-file", type=int, default=1, help="HOSO per file")
    parser.add_argument("--variant", choices=VARIANTS, default="4750", help="XML13 variant")
    args = parser.parse_args(argv)
    try:
        path = write_files(
            args.outdir,
            args.count,
            seed=args.seed,
            facility_code=args.facility,
            defect_rate=args.defect_rate,
            visits_per_file=args.visits_per_file,
            variant=args.variant,
        )
    except ValueError as exc:
        parser.error(str(exc))
    sys.stdout.write(f"wrote {args.count} file(s) to {args.outdir}; manifest: {path}\n")
    return 0
