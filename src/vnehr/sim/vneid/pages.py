"""HTML pages of the simulated VNeID, Vietnamese first, built with ``html.escape``.

Plain strings rather than Jinja2 templates: the pages are few and small, and the package data
rules of the project ship only ``web/templates``, so a template file here would be missing from
a wheel. Every value that comes from a request or from configuration goes through ``_e``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from vnehr.sim.vneid.citizens import DemoCitizen

_STYLE = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f5f7;color:#1c1c1c}
.sim{background:#fff3cd;border-bottom:1px solid #e0c36a;padding:.5rem 1rem;margin:0}
main{max-width:40rem;margin:2rem auto;background:#fff;padding:1.5rem 2rem;border-radius:8px}
h1{color:#b3121d;font-size:1.4rem}
.en{color:#555;font-size:.9rem}
ul{list-style:none;padding:0}
li{margin:.6rem 0;display:flex;gap:1rem;align-items:center;flex-wrap:wrap}
button{font-size:1rem;padding:.5rem 1rem;border-radius:6px;border:1px solid #b3121d;
  background:#b3121d;color:#fff;cursor:pointer;min-width:13rem;text-align:left}
button.deny{background:#fff;color:#b3121d}
fieldset{border:1px solid #ddd;border-radius:6px}
code{background:#eee;padding:0 .2rem}
"""

_SCOPES: dict[str, tuple[str, str]] = {
    "openid": ("Mã định danh ẩn danh (sub)", "An opaque identifier (sub)"),
    "profile": ("Họ tên, ngày sinh, giới tính", "Name, date of birth, sex"),
    "vneid": (
        "Số định danh cá nhân, mức định danh, số điện thoại",
        "Personal identification number, assurance level, phone",
    ),
}
_GENDER_VI = {"male": "Nam", "female": "Nữ"}


def _e(value: object) -> str:
    return escape(str(value), quote=True)


def _page(title: str, body: str) -> str:
    return (
        "<!doctype html>\n"
        '<html lang="vi"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>"
        '<p class="sim" role="note">Môi trường mô phỏng VNeID: chỉ dùng để phát triển và kiểm '
        'thử, không phải VNeID thật. <span lang="en" class="en">VNeID simulator for '
        "development and tests, not the real VNeID.</span></p>"
        f"<main>{body}</main></body></html>\n"
    )


def login_page(
    *,
    client_name: str,
    scopes: Sequence[str],
    params: Mapping[str, str],
    citizens: Sequence[DemoCitizen],
) -> str:
    """The sign-in page: one submit button per demo citizen, named by the full name.

    A single form carries the authorization request in hidden fields; each citizen button
    submits ``personal_id`` and the deny button submits ``action=deny``. The button text is
    the name alone so that a browser test can find it by its accessible name; the details
    are attached with ``aria-describedby``.
    """
    hidden = "".join(
        f'<input type="hidden" name="{_e(name)}" value="{_e(value)}">'
        for name, value in params.items()
    )
    asked = "".join(
        f'<li>{_e(_SCOPES[s][0])} <span lang="en" class="en">({_e(_SCOPES[s][1])})</span></li>'
        for s in scopes
        if s in _SCOPES
    )
    rows = []
    for index, citizen in enumerate(citizens):
        details = (
            f"Số định danh {citizen.personal_id} · {_GENDER_VI[citizen.gender]} · "
            f"sinh ngày {citizen.birthdate:%d/%m/%Y} · tài khoản mức {citizen.assurance_level}"
        )
        rows.append(
            f'<li><button type="submit" name="personal_id" value="{_e(citizen.personal_id)}" '
            f'aria-describedby="citizen-{index}">{_e(citizen.full_name)}</button>'
            f'<span id="citizen-{index}">{_e(details)}</span></li>'
        )
    body = (
        "<h1>Đăng nhập bằng tài khoản định danh điện tử VNeID</h1>"
        '<p lang="en" class="en">Sign in with your VNeID electronic identity account</p>'
        f"<p>Ứng dụng <strong>{_e(client_name)}</strong> đề nghị được nhận thông tin sau "
        f'<span lang="en" class="en">(the application asks for)</span>:</p><ul>{asked}</ul>'
        f'<form method="post" action="authorize">{hidden}'
        "<fieldset><legend>Chọn công dân mô phỏng "
        '<span lang="en" class="en">(choose a demo citizen)</span></legend>'
        f"<ul>{''.join(rows)}</ul></fieldset>"
        '<p><button type="submit" name="action" value="deny" class="deny">'
        "Từ chối / Deny</button></p></form>"
    )
    return _page("Đăng nhập VNeID (mô phỏng)", body)


def error_page(vi: str, en: str, *, error: str) -> str:
    """An error shown in the browser because redirecting to the client is not safe."""
    body = (
        "<h1>Yêu cầu đăng nhập không hợp lệ</h1>"
        '<p lang="en" class="en">Invalid sign-in request</p>'
        f'<p role="alert">{_e(vi)}</p><p lang="en" class="en">{_e(en)}</p>'
        f"<p>Mã lỗi <span lang='en'>(error)</span>: <code>{_e(error)}</code></p>"
    )
    return _page("Lỗi đăng nhập VNeID (mô phỏng)", body)


def logged_out_page() -> str:
    """Shown by the end-session endpoint when there is nowhere to send the browser back."""
    body = (
        "<h1>Đã đăng xuất</h1>"
        '<p lang="en" class="en">Signed out</p>'
        "<p>Bạn đã đăng xuất khỏi VNeID (mô phỏng). Có thể đóng cửa sổ này.</p>"
        '<p lang="en" class="en">You have signed out of the VNeID simulator. '
        "You may close this window.</p>"
    )
    return _page("Đã đăng xuất VNeID (mô phỏng)", body)


def unavailable_page() -> str:
    """The browser face of the ``unavailable`` fault."""
    body = (
        "<h1>Hệ thống VNeID đang tạm ngừng phục vụ</h1>"
        '<p lang="en" class="en">VNeID is temporarily unavailable</p>'
        "<p>Vui lòng thử lại sau.</p>"
        '<p lang="en" class="en">Please try again later.</p>'
    )
    return _page("VNeID tạm ngừng phục vụ (mô phỏng)", body)
