"""The rules of the simulated portal: tokens, what a file or check-in must be, what is kept,
and the card lookup. ``app`` turns these into HTTP answers and adds the injected faults.

Every rule answers HTTP 200 with a result code ``maKetQua``, as the real gateway does:

- token: "200" issued; "401" wrong user name or password; "400" a field missing.
- files and check-ins: "200" received; "401" token missing, unknown, expired or not matching
  ``tokenId`` / ``username`` / ``passwordHash``; "403" the account lists facilities and
  ``maCSKCB`` is not one of them; "400" a form field missing or wrong (``loaiHoSo``, or the
  file's ``MACSKCB`` differs from ``maCSKCB``); "422" the file cannot be read (base64, XML,
  structure); "500" injected system error.
- card lookup: the result codes of the portal (000, 010, 050, 051, 060, 070, 110, 205, 401...).
"""

from __future__ import annotations

import random
import re
import secrets
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from vnehr.kit.clock import VIETNAM
from vnehr.sim.bhxh.config import BhxhConfig, DemoCard, password_hash
from vnehr.sim.bhxh.documents import Refused, Visit, decode_base64, read_checkin, read_envelope

SYSTEM_ERROR = {"maKetQua": "500", "thongDiep": "Lỗi hệ thống"}

#: ghiChu of each card-lookup result code (portal list, SRC-VNPT).
CARD_NOTES: dict[str, str] = {
    "000": "Thẻ còn giá trị sử dụng.",
    "001": "Thẻ do BHXH Bộ Quốc phòng quản lý.",
    "002": "Thẻ do BHXH Bộ Công an quản lý.",
    "003": "Thẻ cũ hết giá trị sử dụng, đã được cấp thẻ mới.",
    "004": "Thẻ cũ còn giá trị sử dụng, đã được cấp thẻ mới.",
    "010": "Thẻ hết giá trị sử dụng.",
    "050": "Không có thông tin thẻ.",
    "051": "Mã thẻ không đúng.",
    "052": "Mã tỉnh cấp thẻ (ký tự thứ 4, 5 của mã thẻ) không đúng.",
    "053": "Mã quyền lợi thẻ (ký tự thứ 3 của mã thẻ) không đúng.",
    "060": "Thẻ sai họ tên.",
    "061": "Thẻ sai họ tên (đúng ký tự đầu).",
    "070": "Thẻ sai ngày sinh.",
    "100": "Lỗi khi lấy dữ liệu sổ thẻ.",
    "110": "Thẻ đã thu hồi.",
    "120": "Thẻ đã báo giảm.",
    "130": "Trẻ em không xuất trình thẻ.",
    "205": "Lỗi sai định dạng tham số.",
    "401": "Lỗi xác thực tài khoản.",
}
#: Results where the card was identified: the card data and its history are released.
_CARD_FOUND = {"000", "001", "002", "003", "004", "010", "110", "120", "121", "122", "123", "124"}
_CARD = re.compile(r"^[A-Z]{2}[1-5]\d{2}\d{10}$")
_BIRTH = re.compile(r"^(\d{2}/\d{2}/\d{4}|\d{4})$")
_GENDER = {1: "Nam", 2: "Nữ", 3: "Chưa xác định"}
_CARD_KEYS = (
    "maThe",
    "hoTen",
    "ngaySinh",
    "gioiTinh",
    "diaChi",
    "maDKBD",
    "cqBHXH",
    "gtTheTu",
    "gtTheDen",
    "maKV",
    "ngayDu5Nam",
    "maSoBHXH",
    "maTheCu",
    "maTheMoi",
    "gtTheTuMoi",
    "gtTheDenMoi",
    "maDKBDMoi",
    "tenDKBDMoi",
)


@dataclass(slots=True)
class Token:
    username: str
    id_token: str
    expires_at: datetime


@dataclass(slots=True)
class Record:
    """One HOSO as the portal keeps it; ``version_number`` counts per (facility, MA_LK)."""

    facility: str
    ma_lk: str
    version_number: int
    content_sha256: str
    ma_giao_dich: str
    received_at: datetime
    variant: str
    duplicate: bool
    tables: tuple[str, ...]
    xml1: dict[str, str] = field(repr=False)

    def public(self) -> dict[str, Any]:
        return {
            "facility": self.facility,
            "ma_lk": self.ma_lk,
            "version_number": self.version_number,
            "content_sha256": self.content_sha256,
            "maGiaoDich": self.ma_giao_dich,
            "received_at": self.received_at.isoformat(),
            "variant": self.variant,
            "duplicate": self.duplicate,
            "tables": list(self.tables),
        }


@dataclass(slots=True)
class CheckIn:
    facility: str
    ma_lk: tuple[str, ...]
    ma_giao_dich: str
    received_at: datetime
    variant: str

    def public(self) -> dict[str, Any]:
        return {
            "facility": self.facility,
            "ma_lk": list(self.ma_lk),
            "maGiaoDich": self.ma_giao_dich,
            "received_at": self.received_at.isoformat(),
            "variant": self.variant,
        }


@dataclass(frozen=True, slots=True)
class Draw:
    """The faults that hit one submission."""

    error: bool = False
    timeout: bool = False
    drop: bool = False
    duplicate: bool = False


def _fold(name: str) -> str:
    return " ".join(unicodedata.normalize("NFC", name).casefold().split())


def _display_day(yyyymmdd: str) -> str:
    """Card dates are kept as yyyyMMdd and answered as dd/MM/yyyy."""
    if len(yyyymmdd) != 8:
        return yyyymmdd
    return f"{yyyymmdd[6:8]}/{yyyymmdd[4:6]}/{yyyymmdd[0:4]}"


class Portal:
    """In-memory state of one simulated portal."""

    def __init__(self, config: BhxhConfig) -> None:
        self.config = config
        self.tokens: dict[str, Token] = {}
        self.records: list[Record] = []
        self.checkins: list[CheckIn] = []
        self._sequence = 0
        self._seeded_with: int | None = None
        self._rng = self._new_rng()

    # ------------------------------------------------------------------ faults

    def _new_rng(self) -> random.Random:
        self._seeded_with = self.config.faults.seed
        return random.Random(self._seeded_with)  # noqa: S311 - fault injection, not crypto

    def reseed(self) -> None:
        self._rng = self._new_rng()

    def draw(self) -> Draw:
        """Which faults hit this submission; a rate of 0 draws nothing, 1 always hits."""
        faults = self.config.faults
        if faults.seed != self._seeded_with:
            self.reseed()

        def hit(rate: float) -> bool:
            return rate > 0 and self._rng.random() < rate

        return Draw(
            error=hit(faults.error_rate),
            timeout=hit(faults.timeout_rate),
            drop=hit(faults.drop_rate),
            duplicate=hit(faults.duplicate_answer_rate),
        )

    # ------------------------------------------------------------------ helpers

    def now(self) -> datetime:
        return self.config.clock()

    def received_stamp(self, at: datetime) -> str:
        return at.astimezone(VIETNAM).strftime("%Y%m%d%H%M%S")

    def _transaction_id(self, at: datetime) -> str:
        """Unique per app; the random tail keeps ids of two simulator runs apart."""
        self._sequence += 1
        return f"{self.received_stamp(at)}{self._sequence:06d}{secrets.token_hex(3).upper()}"

    # ------------------------------------------------------------------ token

    def take_token(self, username: str | None, password: str | None) -> dict[str, Any]:
        if not username or not password:
            return {"maKetQua": "400", "thongDiep": "Thiếu tên đăng nhập hoặc mật khẩu"}
        account = self.config.accounts.get(username)
        # The portal expects MD5 in uppercase hex; anything else (plain text, lowercase) fails.
        if account is None or not secrets.compare_digest(password_hash(account.password), password):
            return {"maKetQua": "401", "thongDiep": "Sai tên đăng nhập hoặc mật khẩu"}
        now = self.now()
        self.tokens = {k: t for k, t in self.tokens.items() if t.expires_at > now}
        access, id_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        ttl = self.config.token_ttl_seconds
        self.tokens[access] = Token(username, id_token, now + timedelta(seconds=ttl))
        return {
            "maKetQua": "200",
            "access_token": access,
            "id_token": id_token,
            "token_type": "bearer",
            "username": username,
            "expires_in": ttl,
        }

    def authenticate(
        self,
        access_token: str | None,
        id_token: str | None,
        username: str | None,
        pw_hash: str | None,
    ) -> str:
        """The account name behind a live token whose other credentials match, or 401."""
        if not access_token or not id_token:
            raise Refused("401", "Thiếu accessToken hoặc tokenId")
        token = self.tokens.get(access_token)
        if token is None or not secrets.compare_digest(token.id_token, id_token):
            raise Refused("401", "Token không hợp lệ")
        if token.expires_at <= self.now():
            raise Refused("401", "Token đã hết hạn, vui lòng lấy token mới")
        account = self.config.accounts.get(token.username)
        if username != token.username or account is None:
            raise Refused("401", "Tên đăng nhập không khớp với token")
        if not pw_hash or not secrets.compare_digest(password_hash(account.password), pw_hash):
            raise Refused("401", "passwordHash không đúng")
        return token.username

    def _facility_allowed(self, username: str, facility: str) -> None:
        allowed = self.config.accounts[username].facilities
        if allowed and facility not in allowed:
            raise Refused(
                "403", f"Tài khoản {username} không được gửi dữ liệu cho cơ sở {facility}"
            )

    @staticmethod
    def _required(form: Mapping[str, str], *names: str) -> None:
        missing = [name for name in names if not form.get(name, "").strip()]
        if missing:
            raise Refused("400", "Thiếu tham số: " + ", ".join(missing))

    # ------------------------------------------------------------------ files

    def receive_file(
        self,
        form: Mapping[str, str],
        headers: Mapping[str, str],
        variant: str,
        *,
        record_twice: bool = False,
    ) -> dict[str, Any]:
        """Validate and keep a GIAMDINHHS file; raises ``Refused`` with the answer code."""
        username = self.authenticate(
            headers.get("accesstoken"),
            headers.get("tokenid"),
            form.get("username"),
            headers.get("passwordhash"),
        )
        self._required(form, "loaiHoSo", "maTinh", "maCSKCB", "fileHSBase64")
        if form["loaiHoSo"].strip() != "130":
            raise Refused("400", f"loaiHoSo phải là 130, nhận được '{form['loaiHoSo']}'")
        facility = form["maCSKCB"].strip()
        self._facility_allowed(username, facility)
        data = decode_base64(form["fileHSBase64"], "fileHSBase64")
        envelope = read_envelope(data, self.config.max_file_bytes)
        if envelope.facility != facility:
            raise Refused(
                "400",
                f"MACSKCB trong hồ sơ ({envelope.facility}) khác maCSKCB gửi lên ({facility})",
            )
        at = self.now()
        transaction = self._transaction_id(at)
        for visit in envelope.visits:
            self._keep(facility, visit, transaction, at, variant)
            if record_twice:
                self._keep(facility, visit, transaction, at, variant)
        count = len(envelope.visits)
        return {
            "maKetQua": "200",
            "maGiaoDich": transaction,
            "thoiGianTiepNhan": self.received_stamp(at),
            "thongDiep": f"Tiếp nhận thành công {count} hồ sơ",
        }

    def _keep(
        self, facility: str, visit: Visit, transaction: str, at: datetime, variant: str
    ) -> None:
        earlier = self.history(facility, visit.ma_lk)
        self.records.append(
            Record(
                facility=facility,
                ma_lk=visit.ma_lk,
                version_number=len(earlier) + 1,
                content_sha256=visit.content_sha256,
                ma_giao_dich=transaction,
                received_at=at,
                variant=variant,
                duplicate=any(r.content_sha256 == visit.content_sha256 for r in earlier),
                tables=visit.tables,
                xml1=visit.xml1,
            )
        )

    def history(self, facility: str, ma_lk: str) -> list[Record]:
        return [r for r in self.records if r.facility == facility and r.ma_lk == ma_lk]

    # ------------------------------------------------------------------ check-in

    def receive_checkin(
        self,
        form: Mapping[str, str],
        headers: Mapping[str, str],
        variant: str,
        *,
        record_twice: bool = False,
    ) -> dict[str, Any]:
        username = self.authenticate(
            headers.get("accesstoken"),
            headers.get("tokenid"),
            form.get("username"),
            headers.get("passwordhash"),
        )
        self._required(form, "loaiHoSo", "maTinh", "maCSKCB", "fileHSBase64")
        if form["loaiHoSo"].strip() != "0":
            raise Refused("400", f"loaiHoSo phải là 0, nhận được '{form['loaiHoSo']}'")
        facility = form["maCSKCB"].strip()
        self._facility_allowed(username, facility)
        data = decode_base64(form["fileHSBase64"], "fileHSBase64")
        keys = read_checkin(data, self.config.max_file_bytes)
        at = self.now()
        transaction = self._transaction_id(at)
        for _ in range(2 if record_twice else 1):
            self.checkins.append(CheckIn(facility, tuple(keys), transaction, at, variant))
        return {
            "maKetQua": "200",
            "maGiaoDich": transaction,
            "thoiGianTiepNhan": self.received_stamp(at),
            "thongDiep": "Check-in thành công",
        }

    # ------------------------------------------------------------------ card lookup

    def lookup(self, query: Mapping[str, str], body: Any) -> dict[str, Any]:
        try:
            self.authenticate(
                query.get("token"),
                query.get("id_token"),
                query.get("username"),
                query.get("password"),
            )
        except Refused:
            return self._card_answer("401")
        if not isinstance(body, dict):
            return self._card_answer("205")
        fields = {}
        for name in ("maThe", "hoTen", "ngaySinh", "hoTenCb", "cccdCb"):
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                return self._card_answer("205")
            fields[name] = value.strip()
        if not _BIRTH.match(fields["ngaySinh"]):
            return self._card_answer("205")
        number = fields["maThe"].upper()
        if not _CARD.match(number):
            return self._card_answer("051")
        card = self.config.cards.get(number)
        if card is None:
            return self._card_answer("050")
        if _fold(fields["hoTen"]) != _fold(card.full_name):
            return self._card_answer("060")
        birth = fields["ngaySinh"]
        if birth != card.birth_date and not (len(birth) == 4 and card.birth_date[-4:] == birth):
            return self._card_answer("070")
        code = card.result_code
        today = self.now().astimezone(VIETNAM).strftime("%Y%m%d")
        if code == "000" and card.valid_to < today:
            code = "010"
        return self._card_answer(code, card)

    def _card_answer(self, code: str, card: DemoCard | None = None) -> dict[str, Any]:
        answer: dict[str, Any] = {"maKetQua": code, "ghiChu": CARD_NOTES.get(code, "")}
        answer.update(dict.fromkeys(_CARD_KEYS))
        answer["dsLichSuKCB2018"] = None
        if card is None or code not in _CARD_FOUND:
            return answer
        answer.update(
            maThe=card.card_number,
            hoTen=card.full_name,
            ngaySinh=card.birth_date,
            gioiTinh=_GENDER.get(card.gender, ""),
            diaChi=card.address,
            maDKBD=card.registered_facility,
            cqBHXH=card.issuing_office,
            gtTheTu=_display_day(card.valid_from),
            gtTheDen=_display_day(card.valid_to),
            maKV=card.area,
            ngayDu5Nam=_display_day(card.five_years_from),
            maSoBHXH=card.social_insurance_number,
            maTheCu=card.old_card,
            maTheMoi=card.new_card,
            gtTheTuMoi=_display_day(card.new_valid_from),
            gtTheDenMoi=_display_day(card.new_valid_to),
            maDKBDMoi=card.new_registered_facility,
            tenDKBDMoi=card.new_registered_facility_name,
            dsLichSuKCB2018=self.past_visits(card.card_number),
        )
        return answer

    def past_visits(self, card_number: str) -> list[dict[str, str]]:
        """The latest version of every received visit on this card, newest admission first.

        ``tinhTrang`` is XML1 ``MA_LOAI_RV``, ``kqDieuTri`` ``KET_QUA_DTRI`` and ``lyDoVV``
        ``MA_DOITUONG_KCB`` (4750 replaced the old ``MA_LYDO_VVIEN`` with it): our reading.
        """
        latest: dict[tuple[str, str], Record] = {}
        for record in self.records:
            cards = {c.strip().upper() for c in record.xml1.get("MA_THE_BHYT", "").split(";")}
            if card_number in cards:
                latest[(record.facility, record.ma_lk)] = record
        visits = [
            {
                "maHoSo": r.ma_lk,
                "maCSKCB": r.facility,
                "ngayVao": r.xml1.get("NGAY_VAO", ""),
                "ngayRa": r.xml1.get("NGAY_RA", ""),
                "tenBenh": r.xml1.get("CHAN_DOAN_RV", ""),
                "tinhTrang": r.xml1.get("MA_LOAI_RV", ""),
                "kqDieuTri": r.xml1.get("KET_QUA_DTRI", ""),
                "lyDoVV": r.xml1.get("MA_DOITUONG_KCB", ""),
            }
            for r in latest.values()
        ]
        visits.sort(key=lambda v: v["ngayVao"], reverse=True)
        return visits

    def reset(self) -> None:
        self.records.clear()
        self.checkins.clear()
