"""The whole sign-in as a citizen does it: a real browser (Debian's Chromium driven by
Playwright) against a real `vnehr serve` process with the built-in VNeID simulator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import zxingcpp
from PIL import Image
from playwright.async_api import Browser, async_playwright, expect

from tests.live import demo_server
from vnehr import demo

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`make run` in miniature, with the development secret."""
    with demo_server(tmp_path_factory, keep_secret=False) as base:
        yield base


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        raise RuntimeError(f"{CHROMIUM} is missing: run scripts/setup-system.sh (apt chromium)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def test_a_citizen_signs_in_with_vneid_and_opens_the_health_book(
    server: str, browser: Browser
) -> None:
    context = await browser.new_context(locale="vi-VN")
    page = await context.new_page()
    await page.goto(server + "/")
    await page.get_by_role("link", name="Đăng nhập bằng VNeID").first.click()
    # The identity provider's page: choose a demo citizen.
    await expect(page).to_have_url(re.compile(r"/sim/vneid/authorize\?"))
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    await expect(page).to_have_url(server + "/portal")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Xin chào, Nguyễn Văn An")
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["vnehr_session"]["httpOnly"] is True
    assert cookies["vnehr_session"]["sameSite"] == "Lax"

    await page.get_by_role("button", name="Mở Sổ sức khỏe điện tử").click()
    await expect(page.get_by_role("status")).to_contain_text("Đã mở Sổ sức khỏe điện tử.")
    await expect(page.locator("#account-status")).to_contain_text("đã được mở từ ngày")

    # The demo makes An the Hanoi health department's administrator.
    await page.get_by_role("link", name="Danh sách cơ sở khám bệnh, chữa bệnh").click()
    table = page.get_by_role("table", name="facilities")
    await expect(table).to_contain_text("Bệnh viện Đa khoa Xanh Pôn")
    await expect(table).to_contain_text("Đã kết nối")

    await page.get_by_role("button", name="Đăng xuất").click()
    await expect(page.get_by_role("link", name="Đăng nhập bằng VNeID").first).to_be_visible()
    assert "vnehr_session" not in {c["name"] for c in await context.cookies()}
    await context.close()


async def test_a_level_one_identity_is_told_to_upgrade(server: str, browser: Browser) -> None:
    context = await browser.new_context(locale="vi-VN")
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Đặng Văn Hùng", exact=True).click()
    await expect(page.get_by_role("alert")).to_contain_text("cần mức 2")
    await expect(page.get_by_role("button", name="Mở Sổ sức khỏe điện tử")).to_have_count(0)
    await context.close()


SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


async def test_a_citizen_reads_the_book_on_a_phone_in_both_languages(
    server: str, browser: Browser
) -> None:
    """An (demo) reads his visits, one visit, the summary and downloads a PDF, on a phone-sized
    screen; switches to English; then opens his son's book."""
    context = await browser.new_context(
        locale="vi-VN", viewport={"width": 390, "height": 844}, accept_downloads=True
    )
    page = await context.new_page()
    await page.goto(server + "/portal/book")
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    await expect(page).to_have_url(server + "/portal/book")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Sổ sức khỏe của Nguyễn Văn An")
    timeline = page.get_by_role("table", name="timeline")
    await expect(timeline.locator("tbody tr")).to_have_count(3)
    await expect(timeline).to_contain_text("Bệnh viện Đa khoa Xanh Pôn")
    await expect(timeline).to_contain_text("Điều trị nội trú")
    SCREENSHOTS.mkdir(exist_ok=True)
    await page.screenshot(path=SCREENSHOTS / "book-timeline-vi.png", full_page=True)

    await timeline.get_by_role("link", name="Chi tiết").first.click()
    await expect(page).to_have_url(re.compile(r"/portal/book/visits/\d+$"))
    await expect(page.locator("#diagnoses li").first).to_contain_text("Bệnh chính")
    await expect(page.get_by_role("table", name="drugs")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "book-visit-vi.png", full_page=True)
    async with page.expect_download() as download_info:
        await page.locator("#pdf").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".pdf")
    saved = Path(await download.path())
    assert (await asyncio.to_thread(saved.read_bytes))[:5] == b"%PDF-"

    await page.locator("#lang-switch").click()
    await expect(page.locator("#diagnoses li").first).to_contain_text("Main")
    await page.get_by_role("link", name="Back to the book").click()
    await page.get_by_role("link", name="Health summary").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Health summary")
    await expect(page.locator("#medicines li").first).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "book-summary-en.png", full_page=True)

    await page.goto(server + "/portal")
    await page.get_by_role("link", name="Hoàng Minh Khang", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Hoàng Minh Khang")
    await expect(page.get_by_role("table", name="timeline").locator("tbody tr")).to_have_count(2)
    # the son's book is named by reference: his personal ID is not in the address bar (D127)
    await expect(page).to_have_url(re.compile(r"/portal/book\?p=[\w-]+$"))
    assert demo.CHILD not in page.url
    await page.get_by_role("link", name="Health summary").click()  # English since the switch
    await expect(page.get_by_role("heading", level=1)).to_contain_text("Hoàng Minh Khang")
    assert demo.CHILD not in page.url
    await context.close()


async def test_a_child_sees_that_a_parent_looked_and_reports_it(
    server: str, browser: Browser
) -> None:
    # (without scripts: the pages, their confirmations included, need none)
    context = await browser.new_context(
        locale="vi-VN", viewport={"width": 390, "height": 844}, java_script_enabled=False
    )
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    # (exact: the messages about him lead to his book's pages too)
    await page.get_by_role("link", name="Hoàng Minh Khang", exact=True).click()
    await expect(page.get_by_role("table", name="timeline")).to_be_visible()
    await page.get_by_role("button", name="Đăng xuất").click()

    await page.goto(server + "/auth/login?next=/portal/book/access-log")
    await page.get_by_role("button", name="Hoàng Minh Khang", exact=True).click()
    log = page.get_by_role("table", name="access log")
    await expect(log).to_contain_text("Nguyễn Văn An")
    await expect(log).to_contain_text("với tư cách cha/mẹ")
    await expect(log).to_contain_text("Xem danh sách lượt khám")
    await page.screenshot(path=SCREENSHOTS / "access-log-vi.png", full_page=True)
    # a report cannot be taken back: the page asks first (a page of its own, no script)
    await log.get_by_role("link", name="Tôi không nhận ra lượt xem này").first.click()
    await expect(page.get_by_role("alert")).to_contain_text("không rút lại được")
    await log.get_by_role("button", name="Gửi báo cáo tới Sở Y tế").click()
    await expect(page.get_by_role("status")).to_contain_text("Đã gửi khiếu nại tới Sở Y tế")
    await expect(log).to_contain_text("Đã báo Sở Y tế")
    await context.close()


async def test_a_clinician_is_refused_then_uses_the_reception_code(
    server: str, browser: Browser
) -> None:
    """Bình makes a code in her book; Dung, a doctor at the demo's connected hospital (where
    clinicians too read a record only as the patient allows), is refused, enters the code, and
    sees Bình's record; Bình then sees the read in her access log."""
    patient = await browser.new_context(locale="vi-VN")
    page = await patient.new_page()
    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Trần Thị Bình", exact=True).click()
    await expect(page).to_have_url(server + "/portal")
    # Bình manages her sharing: shares the summary with every facility, then revokes it. An
    # empty facility box is not "every facility": that is a choice of its own, confirmed
    await page.goto(server + "/portal/book")
    await page.get_by_role("link", name="Chia sẻ hồ sơ").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Chia sẻ hồ sơ sức khỏe")
    await page.get_by_role("button", name="Chia sẻ", exact=True).click()
    await expect(page.locator("#facility-error")).to_contain_text("Bạn chưa chọn cơ sở")
    await page.get_by_role("radio", name="Mọi cơ sở khám, chữa bệnh").check()
    await page.get_by_role("button", name="Chia sẻ", exact=True).click()
    await expect(page.locator("#every-confirm")).to_contain_text("MỌI cơ sở")
    await page.get_by_role("button", name="Xác nhận chia sẻ với mọi cơ sở").click()
    directives = page.get_by_role("table", name="directives")
    await expect(directives).to_contain_text("Mọi cơ sở")
    await expect(directives).to_contain_text("Đang hiệu lực")
    await directives.get_by_role("link", name="Thu hồi").click()  # asks first, on its row
    await expect(directives).to_contain_text("Đang hiệu lực")
    await directives.get_by_role("button", name="Xác nhận thu hồi").click()
    await expect(directives).to_contain_text("Đã thu hồi")
    # the code to show at reception: digits and a QR code, once
    await page.get_by_role("button", name="Tạo mã xuất trình").click()
    shown = ((await page.locator("#reception-code").text_content()) or "").strip()
    assert re.fullmatch(r"\d{6}", shown)
    await expect(page.get_by_label("QR")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "sharing-vi.png", full_page=True)

    doctor = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    clinic = await doctor.new_page()
    await clinic.goto(server + "/auth/login?next=/portal")
    await clinic.get_by_role("button", name="Phạm Thị Dung", exact=True).click()
    await clinic.get_by_role("link", name="Tra cứu hồ sơ người bệnh").click()
    await clinic.get_by_label("Số định danh cá nhân của người bệnh").fill("079162003581")
    await clinic.get_by_role("button", name="Tra cứu").click()
    await expect(clinic.get_by_role("alert")).to_contain_text("chưa đồng ý")
    assert "079162003581" not in clinic.url  # nor in the history: the form is sent by POST
    await clinic.get_by_label("Mã người bệnh xuất trình (6 số)").fill(shown)
    await clinic.get_by_role("button", name="Dùng mã").click()
    await expect(clinic.locator("#basis")).to_contain_text("đã đồng ý")
    assert "079162003581" not in clinic.url
    await expect(clinic.get_by_role("heading", level=2)).to_have_text("Trần Thị Bình")
    await expect(clinic.get_by_role("table", name="patient visits").locator("tr")).to_have_count(3)
    await clinic.screenshot(path=SCREENSHOTS / "clinician-view-vi.png", full_page=True)

    await page.goto(server + "/portal/book/access-log")
    await expect(page.get_by_role("table", name="access log")).to_contain_text("Phạm Thị Dung")
    await expect(page.get_by_role("table", name="access log")).to_contain_text("Bác sĩ xem hồ sơ")
    await doctor.close()
    await patient.close()


NODE_MODULES = Path(__file__).resolve().parents[2] / ".cache" / "shc" / "node_modules"
SHC_READER = Path(__file__).resolve().parents[1] / "papers" / "shc_reader.cjs"


async def shc_sdk_verify(qr: str, issuer: str, jwks: str) -> object:
    """PathCheck's SMART Health Cards SDK (npm, not written here) checks the card; it fetches
    the issuer's keys from the live server like any verifier."""
    if not (NODE_MODULES / "@pathcheck" / "shc-sdk").is_dir():
        raise RuntimeError(f"{NODE_MODULES} is missing: run scripts/fetch-npm-tools.sh")
    process = await asyncio.create_subprocess_exec(
        "node",
        str(SHC_READER),
        qr,
        issuer,
        jwks,
        env={**os.environ, "NODE_PATH": str(NODE_MODULES)},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    return json.loads(out)


async def test_a_citizen_shows_a_paper_and_anyone_verifies_its_qr(
    server: str, browser: Browser
) -> None:
    """An's driver's certificate in his book: its QR, photographed off the screen, is read by an
    independent QR reader (zxing-cpp), verified by PathCheck's SHC SDK, and on the public
    verification page; a changed code is refused there."""
    context = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(server + "/portal/book")
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    await page.get_by_role("link", name="Giấy tờ").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Giấy tờ: Nguyễn Văn An")
    certificate = page.locator("li.paper", has_text="Giấy khám sức khỏe lái xe")
    await expect(certificate.locator(".status")).to_have_text("Còn hiệu lực")
    await page.screenshot(path=SCREENSHOTS / "papers-vi.png", full_page=True)
    picture = await certificate.get_by_label("QR").screenshot()
    image = Image.open(io.BytesIO(picture))  # (QR only: the reader may also see an EAN-13)
    [found] = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    qr = found.text
    assert qr.startswith("shc:/")

    jwks = await page.evaluate("async () => await (await fetch('/.well-known/jwks.json')).text()")
    credential = await shc_sdk_verify(qr, server, jwks)
    assert isinstance(credential, dict)
    assert credential["vc"]["type"] == ["https://smarthealth.cards#health-card"]
    [patient, *_] = [
        e["resource"] for e in credential["vc"]["credentialSubject"]["fhirBundle"]["entry"]
    ]
    assert patient["name"][0]["text"] == "Nguyễn Văn An"
    # a digit pair in the middle of the payload (changing the signature's last character may
    # only touch its padding bits)
    middle = 5 + (len(qr) - 5) // 4 * 2
    pair = int(qr[middle : middle + 2])
    forged = f"{qr[:middle]}{pair + 1 if pair < 77 else pair - 1:02d}{qr[middle + 2 :]}"
    assert await shc_sdk_verify(forged, server, jwks) is None

    anyone = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    check = await anyone.new_page()
    await check.goto(server + "/verify")
    await check.get_by_label("Nội dung mã QR").fill(qr)
    await check.get_by_role("button", name="Kiểm tra").click()
    await expect(check.locator("#verdict")).to_have_text(
        "Giấy tờ xác thực và còn hiệu lực hôm nay."
    )
    facts = check.get_by_role("table", name="paper")
    await expect(facts).to_contain_text("Nguyễn Văn An")
    await expect(facts).to_contain_text("B, C1")
    await check.screenshot(path=SCREENSHOTS / "verify-vi.png", full_page=True)
    await check.get_by_label("Nội dung mã QR").fill(forged)
    await check.get_by_role("button", name="Kiểm tra").click()
    await expect(check.locator("#verdict")).to_contain_text("Không xác thực được")
    await anyone.close()
    await context.close()


async def test_the_department_reads_the_report_filters_it_and_writes_its_notes(
    server: str, browser: Browser
) -> None:
    """An (the department) opens the six-monthly report: the matrix carries the demo visits
    (sent through the intake, counted by the report's event consumer), the declared visits,
    the wards' populations; a facility filter narrows it; the notes go into the report."""
    context = await browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Nguyễn Văn An", exact=True).click()
    await page.get_by_role("link", name="Báo cáo Sổ sức khỏe điện tử").click()
    await expect(page.get_by_role("heading", level=1)).to_contain_text(
        "Báo cáo Sổ sức khỏe điện tử"
    )
    matrix = page.get_by_role("table", name="matrix")
    exam = matrix.locator("tr", has_text="Khám bệnh ngoại trú")
    # the consumer runs inside the server's worker: wait for the demo visits to be counted
    for _ in range(40):
        if (await exam.locator("td").nth(2).text_content() or "0").strip() not in ("0", ""):
            break
        await asyncio.sleep(0.5)
        await page.reload()
    cells = [((await c.text_content()) or "").strip() for c in await exam.locator("td").all()]
    assert cells[1] == "1.200"  # declared by the facility
    assert int(cells[2].replace(".", "")) >= 1  # sent through the intake
    await expect(page.get_by_role("table", name="people")).to_contain_text("21.500")
    await expect(page.locator("#papers")).to_contain_text("Giấy khám sức khỏe lái xe")
    await page.screenshot(path=SCREENSHOTS / "report-dashboard-vi.png", full_page=True)

    await page.get_by_label("Cơ sở").select_option(label="01002 Bệnh viện Thanh Nhàn")
    await page.get_by_role("button", name="Xem").click()
    total = page.get_by_role("table", name="matrix").locator("tr.total")
    await expect(total).to_contain_text(re.compile(r"Tổng cộng\s*0 đã gửi"))

    await page.get_by_label("Khó khăn, vướng mắc và kiến nghị (đưa vào báo cáo)").fill(
        "Phòng khám tư nhân chưa ký số được hồ sơ."
    )
    await page.get_by_role("button", name="Lưu").click()
    await expect(page.locator("#notes .notes")).to_have_text(
        "Phòng khám tư nhân chưa ký số được hồ sơ."
    )
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="XLSX (biểu mẫu Bộ Y tế)").click()
    download = await download_info.value
    assert download.suggested_filename.endswith(".xlsx")
    await context.close()


async def test_a_facility_administrator_reads_her_facility_on_a_phone(
    server: str, browser: Browser
) -> None:
    """Bình (demo) opens "Cơ sở của tôi" from her page on a phone: the facility, connected,
    its demo visit file's receipt, nothing wider than the screen in either language; a file
    with a DTD checked before sending is told in words, the form still there."""
    context = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/portal")
    await page.get_by_role("button", name="Trần Thị Bình", exact=True).click()
    await page.get_by_role("link", name="Cơ sở của tôi").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bệnh viện Đa khoa Xanh Pôn")
    await expect(page.locator("#state")).to_have_text("Đã kết nối")
    await expect(page.get_by_role("table", name="receipts")).to_contain_text("Đã nhận")
    for lang in ("en", "vi"):
        await page.goto(f"{page.url.split('?')[0]}?lang={lang}")
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width == 390, lang
    # the history is folded away, a tap on its heading opens it
    history = page.get_by_role("table", name="onboarding history")
    await expect(history).to_be_hidden()
    await page.locator("#history").click()
    await expect(history).to_be_visible()
    await page.locator("#history").click()
    await page.screenshot(path=SCREENSHOTS / "facility-vi.png", full_page=True)

    await page.set_input_files(
        "form[aria-label='check a file'] input[type=file]",
        files=[{"name": "hoso.xml", "mimeType": "application/xml",
                "buffer": b'<!DOCTYPE x [<!ENTITY e "x">]><GIAMDINHHS>&e;</GIAMDINHHS>'}],
    )  # fmt: skip
    await page.get_by_role("button", name="Kiểm tra").click()
    await expect(page.get_by_role("alert")).to_contain_text("có khai báo DOCTYPE/ENTITY")
    await expect(page.get_by_role("button", name="Kiểm tra")).to_be_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") == 390
    await context.close()


async def test_a_facility_administrator_gives_a_role_and_registers_a_system_on_a_phone(
    server: str, browser: Browser
) -> None:
    """Bình (demo) gives Võ Thị Hoa the clinician role after the check names her, and
    registers her IT's system with a PEM public key pasted in, on a phone: each section she
    acts in opens again with what was done, nothing wider than the screen."""
    hoa = await browser.new_context(locale="vi-VN")  # Hoa is on record once she signs in
    first = await hoa.new_page()
    await first.goto(server + "/auth/login?next=/portal")
    await first.get_by_role("button", name="Võ Thị Hoa", exact=True).click()
    await expect(first).to_have_url(server + "/portal")
    await hoa.close()

    context = await browser.new_context(locale="vi-VN", viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(server + "/auth/login?next=/facility")
    await page.get_by_role("button", name="Trần Thị Bình", exact=True).click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Bệnh viện Đa khoa Xanh Pôn")
    await page.locator("#clinicians").click()  # the staff section unfolds
    await page.get_by_label("Số định danh cá nhân").fill("079303006174")
    await page.get_by_role("button", name="Kiểm tra số định danh").click()
    await expect(page.locator("#person")).to_have_text("Võ Thị Hoa")
    await page.get_by_role("button", name="Đồng ý, giao vai trò").click()
    await expect(page.get_by_role("status")).to_have_text("Đã giao vai trò Bác sĩ cho Võ Thị Hoa.")
    await expect(page.get_by_role("table", name="staff")).to_contain_text("Võ Thị Hoa")

    await page.locator("#systems").click()
    await page.get_by_label("Tên hệ thống").fill("HIS Xanh Pôn")
    await page.get_by_label("Khóa công khai", exact=False).first.fill(
        "-----BEGIN PUBLIC KEY-----\n"
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEEVs/o5+uQbTjL3chynL4wXgUg2R9\n"
        "q9UU8I5mEovUf86QZ7kOBIjJwqnzD1omageEHWwHdBO6B+dFabmdT9POxg==\n"
        "-----END PUBLIC KEY-----"
    )
    await page.get_by_role("button", name="Đăng ký hệ thống").click()
    done = page.get_by_role("status")
    await expect(done).to_contain_text("Đã đăng ký hệ thống «HIS Xanh Pôn»")
    await expect(done).to_contain_text("/oauth/token")
    assert await page.evaluate("document.documentElement.scrollWidth") == 390
    await page.screenshot(path=SCREENSHOTS / "facility-manage-vi.png", full_page=True)
    await context.close()
