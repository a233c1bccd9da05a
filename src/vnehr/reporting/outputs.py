"""The report as files: JSON, CSV (one figure per line), XLSX laid out like the Ministry's form,
and a Vietnamese PDF with charts (matplotlib, Agg). The dashboard's page draws its charts
itself, in plain SVG (``svg.py``), without matplotlib."""

from __future__ import annotations

import base64
import csv
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, select_autoescape

from vnehr.kit import numerals
from vnehr.reporting.metrics import LAG_BUCKETS

_env = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
PAPER_TITLES = {
    "driver": "Giấy khám sức khỏe lái xe",
    "referral": "Giấy chuyển tuyến",
    "re_exam": "Giấy hẹn khám lại",
    "sick_leave": "Giấy nghỉ việc hưởng BHXH",
    "birth": "Giấy chứng sinh",
    "discharge": "Giấy ra viện",
}


def _percent(value: float | None) -> str:
    """A share as the report writes it: "12,3 %"."""
    return numerals.percent(value, "vi")


def _number(value: int | None) -> str:
    """A count as the report writes it: "1.234"."""
    return numerals.number(value, "vi")


def _duration(minutes: int | str | None) -> str:
    if minutes is None:
        return "—"
    if not isinstance(minutes, int):  # report.BEYOND
        return "> 1 năm"
    if minutes < 60:
        return f"≤ {minutes} phút"
    if minutes < 2880:
        return f"≤ {minutes // 60} giờ"
    return f"≤ {minutes // 1440} ngày"


def _minutes(value: int | str | None) -> int | str | None:
    """A lag in the XLSX: the bucket's upper bound in minutes, or "> 525600" beyond a year."""
    return f"> {LAG_BUCKETS[-1]}" if isinstance(value, str) else value


numerals.install(_env, "vi")  # the Ministry's form is Vietnamese: 1.234 and 12,3 %
_env.filters["duration"] = _duration


def _province(figures: dict[str, Any]) -> str:
    return f"tỉnh/thành phố {figures['province']}" if figures["province"] else "toàn quốc"


def _parts(figures: dict[str, Any]) -> list[str]:
    """The ward and the facility a report is narrowed to, with their names."""
    parts = []
    if figures.get("ward"):
        parts.append(f"phường/xã {figures['ward']} {figures.get('ward_name') or ''}".strip())
    if figures.get("facility"):
        parts.append(
            f"cơ sở KCB {figures['facility']} {figures.get('facility_name') or ''}".strip()
        )
    return parts


def place(figures: dict[str, Any]) -> str:
    """What the report is of: the province (or the country), then the ward and the facility
    it is narrowed to."""
    return ", ".join([_province(figures), *_parts(figures)])


def narrowed(figures: dict[str, Any]) -> str | None:
    """The warning a report narrowed to a ward or a facility carries (None: the whole
    province or country): its file must never pass for the province's report."""
    parts = _parts(figures)
    if not parts:
        return None
    return f"Báo cáo riêng {' và '.join(parts)}: không phải báo cáo của cả {_province(figures)}"


def file_name(figures: dict[str, Any], fmt: str) -> str:
    """``sskdt-2026H2-01.xlsx`` for a province (``VN``: the country), with
    ``-phuongxa00004`` and ``-coso01002`` when narrowed to a ward and a facility."""
    name = f"sskdt-{figures['period']}-{figures['province'] or 'VN'}"
    if figures.get("ward"):
        name += f"-phuongxa{figures['ward']}"
    if figures.get("facility"):
        name += f"-coso{figures['facility']}"
    return f"{name}.{fmt}"


def to_json(figures: dict[str, Any]) -> bytes:
    return orjson.dumps(figures, option=orjson.OPT_INDENT_2)


def rows(figures: dict[str, Any]) -> Iterator[tuple[str, str, str, str, Any]]:
    """(section, item, dimension 1, dimension 2, value): every figure of the report."""
    for row in figures["matrix"]:
        for flag in ("insured", "uninsured"):
            for what in ("made", "sent", "in_book"):
                yield ("matrix", what, row["category"], flag, row[flag][what])
    facilities = figures["facilities"]
    for what in ("with_code", "connected", "sending"):
        yield ("facilities", what, "", "", facilities[what])
        for own, numbers in facilities["by_ownership"].items():
            yield ("facilities", what, "ownership", own, numbers[what])
        for ward in facilities["by_ward"]:
            yield ("facilities", what, "ward", ward["ward"], ward[what])
    people = figures["people"]
    yield ("people", "accounts", "", "", people["accounts"])
    yield ("people", "population", "", "", people["population"])
    for ward in people["by_ward"]:
        yield ("people", "accounts", "ward", ward["ward"], ward["accounts"])
        yield ("people", "population", "ward", ward["ward"], ward["population"])
    for what in ("created", "integrated", "share"):
        yield ("records", what, "", "", figures["records"][what])
    timeliness = figures["timeliness"]
    for what in ("visits", "median_minutes", "p90_minutes", "within_24h", "within_deadline"):
        yield ("timeliness", what, "", "", timeliness[what])
    for slow in timeliness["slowest"]:
        yield ("timeliness", "slowest_median_minutes", slow["facility"], "", slow["median_minutes"])
    quality = figures["quality"]
    for what in ("rejected_visits", "rejection_rate", "with_summary", "with_summary_share"):
        yield ("quality", what, "", "", quality[what])
    for code in quality["by_code"]:
        yield ("quality", "rejected_by_code", code["code"], "", code["visits"])
    for kind, count in figures["papers"].items():
        yield ("papers", "issued", kind, "", count)
    for what in ("visits", "cost_per_record", "total"):
        yield ("savings", what, "", "", figures["savings"][what])


def to_csv(figures: dict[str, Any]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    # every line says what the report is of: a ward's or a facility's figures are never
    # mistaken for the province's when lines of several files are put together
    writer.writerow(
        ["period", "province", "ward", "facility", "section", "item", "dim1", "dim2", "value"]
    )
    scope = [
        figures["period"],
        figures["province"] or "VN",
        figures.get("ward") or "",
        figures.get("facility") or "",
    ]
    for row in rows(figures):
        writer.writerow([*scope, *row])
    return out.getvalue().encode("utf-8-sig")  # Excel opens UTF-8 with the BOM


def to_xlsx(figures: dict[str, Any]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font

    book = Workbook()
    sheet = book.active
    sheet.title = "Biểu báo cáo"
    bold = Font(bold=True)
    sheet["A1"] = "BÁO CÁO KẾT QUẢ TRIỂN KHAI SỔ SỨC KHỎE ĐIỆN TỬ"
    sheet["A1"].font = Font(bold=True, size=13)
    sheet["A2"] = (
        f"Kỳ báo cáo {figures['period']} ({figures['from']} – {figures['to']}), {place(figures)}"
    )
    warning = narrowed(figures)
    if warning:
        sheet["A3"] = warning
        sheet["A3"].font = Font(bold=True, color="B3261E")
    else:
        sheet.append([])
    sheet.append(
        [
            "STT",
            "Hình thức khám bệnh, chữa bệnh",
            "Có thẻ BHYT",
            "",
            "",
            "Không có thẻ BHYT",
            "",
            "",
        ]
    )
    sheet.append(
        [
            "",
            "",
            "Số lượt KCB",
            "Số lượt đã gửi",
            "Số lượt vào Sổ SKĐT",
            "Số lượt KCB",
            "Số lượt đã gửi",
            "Số lượt vào Sổ SKĐT",
        ]
    )
    sheet.merge_cells("C4:E4")
    sheet.merge_cells("F4:H4")
    for cell in (*sheet[4], *sheet[5]):
        cell.font = bold
        cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
    for number, row in enumerate(figures["matrix"], start=1):
        sheet.append(
            [
                number,
                row["title"][0],
                row["insured"]["made"],
                row["insured"]["sent"],
                row["insured"]["in_book"],
                row["uninsured"]["made"],
                row["uninsured"]["sent"],
                row["uninsured"]["in_book"],
            ]
        )

    def column_total(flag: str, what: str) -> int | None:
        """The sum of a column of the form (None: no facility declared anything in it)."""
        values = [row[flag][what] for row in figures["matrix"] if row[flag][what] is not None]
        return sum(values) if values else None

    sheet.append(
        [
            "",
            "Tổng cộng",
            *(
                column_total(flag, what)
                for flag in ("insured", "uninsured")
                for what in ("made", "sent", "in_book")
            ),
        ]
    )
    sheet[sheet.max_row][1].font = bold
    sheet.column_dimensions["B"].width = 34
    for column in "CDEFGH":
        sheet.column_dimensions[column].width = 15

    def table(title: str, header: list[str], body: list[list[Any]]) -> None:
        page = book.create_sheet(title)
        page.append(header)
        for cell in page[1]:
            cell.font = bold
        for line in body:
            page.append(line)
            for cell in page[page.max_row]:
                if isinstance(cell.value, str) and cell.value.startswith("="):
                    cell.data_type = "s"  # free text (the notes), never a formula
        for column in page.columns:
            page.column_dimensions[column[0].column_letter].width = 22

    f = figures["facilities"]
    table(
        "Cơ sở KCB",
        ["Phạm vi", "Có mã", "Đã kết nối", "Có gửi dữ liệu trong kỳ"],
        [["Tổng", f["with_code"], f["connected"], f["sending"]]]
        + [
            [
                {"public": "Công lập", "private": "Ngoài công lập"}[k],
                v["with_code"],
                v["connected"],
                v["sending"],
            ]
            for k, v in f["by_ownership"].items()
        ]
        + [
            [f"{w['ward']} {w['name']}", w["with_code"], w["connected"], w["sending"]]
            for w in f["by_ward"]
        ],
    )
    p = figures["people"]
    table(
        "Người dân",
        ["Phường/xã", "Tài khoản Sổ SKĐT", "Dân số", "Tỷ lệ"],
        [["Tổng", p["accounts"], p["population"], p["share"]]]
        + [
            [f"{w['ward']} {w['name']}", w["accounts"], w["population"], w["share"]]
            for w in p["by_ward"]
        ],
    )
    t = figures["timeliness"]
    table(
        "Kịp thời",
        ["Chỉ tiêu", "Giá trị"],
        [
            ["Số lượt đã gửi", t["visits"]],
            ["Trung vị độ trễ (phút, cận trên)", _minutes(t["median_minutes"])],
            ["Bách phân vị 90 (phút, cận trên)", _minutes(t["p90_minutes"])],
            ["Tỷ lệ gửi trong 24 giờ", t["within_24h"]],
            ["Tỷ lệ gửi trong thời hạn (7 ngày làm việc)", t["within_deadline"]],
            ["Hồ sơ được tạo", figures["records"]["created"]],
            ["Hồ sơ tích hợp vào Sổ SKĐT", figures["records"]["integrated"]],
        ]
        + [
            [f"Chậm nhất: {s['facility']} {s['name']}", _minutes(s["median_minutes"])]
            for s in t["slowest"]
        ],
    )
    q = figures["quality"]
    table(
        "Chất lượng",
        ["Chỉ tiêu / mã lỗi", "Số lượt", "Tỷ lệ", "Nội dung"],
        [
            ["Lượt bị từ chối", q["rejected_visits"], q["rejection_rate"], ""],
            ["Lượt có bảng tóm tắt hồ sơ (XML8)", q["with_summary"], q["with_summary_share"], ""],
        ]
        + [[c["code"], c["visits"], c["share"], c["message"]["vi"]] for c in q["by_code"]],
    )
    table(
        "Giấy tờ",
        ["Loại giấy tờ", "Số đã cấp"],
        [[PAPER_TITLES[k], v] for k, v in figures["papers"].items()],
    )
    s = figures["savings"]
    table(
        "Tiết kiệm",
        ["Số lượt", "Chi phí/hồ sơ giấy (đồng)", "Ước tính tiết kiệm (đồng)"],
        [[s["visits"], s["cost_per_record"], s["total"]]],
    )
    table(
        "Khó khăn, kiến nghị",
        ["Nội dung", "Phạm vi báo cáo"],
        [
            [
                figures["notes"],
                f"{warning}; khó khăn, kiến nghị là của cả {_province(figures)}"
                if warning
                else place(figures),
            ]
        ],
    )
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# ------------------------------------------------------------------ charts and the PDF


def charts(figures: dict[str, Any], fmt: str = "svg") -> dict[str, bytes]:
    """Bar charts of the matrix, the lag distribution and accounts by ward."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    made: dict[str, bytes] = {}
    #: the axes' numbers as the report writes them (1.000, 2,5), counts in whole steps
    vietnamese = FuncFormatter(lambda value, _: numerals.number(value, "vi"))

    def counts(axis: Any) -> None:
        axis.set_major_locator(MaxNLocator(integer=True))
        axis.set_major_formatter(vietnamese)

    def save(name: str, figure: Any) -> None:
        out = io.BytesIO()
        figure.tight_layout()
        figure.savefig(out, format=fmt, dpi=110)
        plt.close(figure)
        made[name] = out.getvalue()

    figure, axes = plt.subplots(figsize=(7.5, 3.2))
    labels = [r["title"][0] for r in figures["matrix"]]
    positions = range(len(labels))
    axes.barh(
        [p + 0.2 for p in positions],
        [r["insured"]["sent"] for r in figures["matrix"]],
        height=0.4,
        label="Có thẻ BHYT",
        color="#b3261e",
    )
    axes.barh(
        [p - 0.2 for p in positions],
        [r["uninsured"]["sent"] for r in figures["matrix"]],
        height=0.4,
        label="Không có thẻ BHYT",
        color="#5f6368",
    )
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    axes.set_xlabel("Số lượt đã gửi lên Sổ sức khỏe điện tử")
    counts(axes.xaxis)
    axes.legend(loc="lower right")
    save("matrix", figure)

    figure, axes = plt.subplots(figsize=(7.5, 2.8))
    histogram = [h for h in figures["timeliness"]["histogram"] if h["visits"]]
    axes.bar(
        [_duration(h["up_to_minutes"]) if h["up_to_minutes"] else "lâu hơn" for h in histogram],
        [h["visits"] for h in histogram],
        color="#0b57d0",
    )
    axes.set_ylabel("Số lượt")
    counts(axes.yaxis)
    axes.set_title("Độ trễ từ khi kết thúc lượt khám đến khi nhận")
    axes.tick_params(axis="x", labelrotation=45, labelsize=7)
    save("lag", figure)

    wards = [w for w in figures["people"]["by_ward"] if w["population"]][:30]
    figure, axes = plt.subplots(figsize=(7.5, 2.8))
    axes.bar(
        [w["name"] or w["ward"] for w in wards],
        [100 * (w["share"] or 0) for w in wards],
        color="#137333",
    )
    axes.set_ylabel("% dân số có tài khoản")
    axes.yaxis.set_major_formatter(vietnamese)
    axes.set_title("Tài khoản Sổ sức khỏe điện tử theo phường, xã")
    axes.tick_params(axis="x", labelrotation=60, labelsize=7)
    save("accounts", figure)
    return made


def _inline(chart: bytes) -> str:
    """A chart as HTML: SVG inline (the dashboard), PNG as a data URI (the PDF: WeasyPrint
    draws matplotlib's SVG styles poorly)."""
    if chart.startswith(b"\x89PNG"):
        return f'<img alt="" src="data:image/png;base64,{base64.b64encode(chart).decode()}">'
    text = chart.decode()
    return text[text.index("<svg") :]


def html(figures: dict[str, Any], drawn: dict[str, bytes], *, fragment: bool = False) -> str:
    """The report as HTML: the whole PDF page, or the body the dashboard embeds."""
    return _env.get_template("report_body.html" if fragment else "report.html").render(
        f=figures,
        charts={k: _inline(v) for k, v in drawn.items()},
        papers=PAPER_TITLES,
        narrowed=narrowed(figures),
    )


def to_pdf(figures: dict[str, Any]) -> bytes:
    from weasyprint import HTML

    pdf: bytes = HTML(string=html(figures, charts(figures, "png"))).write_pdf()
    return pdf
