"""Simulated BHXH health-insurance appraisal portal (egw.baohiemxahoi.gov.vn), QĐ 130/4750/3176.

Mount it in the development app or a test::

    from vnehr.sim.bhxh import Account, BhxhConfig, create_app

    app.mount(
        "/sim/bhxh",
        create_app(BhxhConfig(accounts={"01001_BV": Account("dev-password", ("01001",))})),
    )

Portal endpoints (relative to the mount point, as on ``https://egw.baohiemxahoi.gov.vn``):
``POST /api/token/take``, ``POST /api/qd130/guiHoSoXmlQD4750`` and ``...QD3176``,
``POST /api/qd130/checkInKcbQd4750`` and ``...Qd3176``, ``POST /api/egw/KQNhanLichSuKCB2024``.
Controls: ``GET/PUT /_sim/faults``, ``GET/DELETE /_sim/received``,
``GET /_sim/received/{facility}/{ma_lk}``, ``GET /_sim/checkins``.
Product code never imports this package; only composition roots and tests do.
"""

from vnehr.sim.bhxh.app import create_app
from vnehr.sim.bhxh.config import DEMO_CARDS, Account, BhxhConfig, DemoCard, Faults, password_hash

__all__ = [
    "DEMO_CARDS",
    "Account",
    "BhxhConfig",
    "DemoCard",
    "Faults",
    "create_app",
    "password_hash",
]
