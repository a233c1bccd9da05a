"""``VNEHR_INTAKE_PURE_PYTHON`` turns the compiled reader off for a whole process (D115): read
like every other setting, from the environment or a ``.env`` line, as a yes or a no."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vnehr.submissions import xmlio

pytestmark = pytest.mark.skipif(
    xmlio._fast is None, reason="no compiled reader here: nothing to turn off"
)


def _compiled_in_a_process(cwd: Path, value: str | None) -> bool:
    """Whether a new process started in ``cwd`` reads the inner tables with the compiled
    module, given ``value`` (None: not set) for VNEHR_INTAKE_PURE_PYTHON."""
    env = {k: v for k, v in os.environ.items() if k != "VNEHR_INTAKE_PURE_PYTHON"}
    if value is not None:
        env["VNEHR_INTAKE_PURE_PYTHON"] = value
    done = subprocess.run(
        [sys.executable, "-c", "from vnehr.submissions import xmlio; print(xmlio.compiled())"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return {"True": True, "False": False}[done.stdout.strip().splitlines()[-1]]


@pytest.mark.parametrize(
    ("value", "compiled"),
    [
        (None, True),
        ("", True),
        ("false", True),
        ("off", True),
        ("1", False),
        ("YES", False),
    ],
)
def test_the_switch_reads_yes_and_no_as_the_settings_do(
    tmp_path: Path, value: str | None, compiled: bool
) -> None:
    # "false" and "off" used to switch the compiled reader off
    assert _compiled_in_a_process(tmp_path, value) is compiled


def test_the_switch_is_read_from_a_dot_env_line_too(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("VNEHR_INTAKE_PURE_PYTHON=true\n", encoding="utf-8")
    assert _compiled_in_a_process(tmp_path, None) is False
    # the environment wins over .env, as for every setting
    assert _compiled_in_a_process(tmp_path, "off") is True
