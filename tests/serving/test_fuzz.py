"""Fuzzing the OpenAPI spec with schemathesis against the real server process: whatever a
client sends that the spec allows or not, no answer is a 5xx.

Runs schemathesis's own runner (its pytest plugin does not support pytest 9 yet)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from homeloop.settings import Settings
from homeloop.stack.ports import free_port

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def api_url(served: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    mine = served.model_copy(update={"api_port": free_port()})
    log = tmp_path_factory.mktemp("fuzz") / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "homeloop.cli", "serve"],
            env={**os.environ, **mine.as_env()},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{mine.api_port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        else:
            raise RuntimeError(f"API not ready: {Path(log).read_text()[-2000:]}")
        yield url
    finally:
        server.terminate()
        server.wait(10)


def test_no_input_gets_a_server_error(api_url: str, served: Settings, tmp_path: Path) -> None:
    report = subprocess.run(
        [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{api_url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "-H",
            f"Authorization: Bearer {served.admin_token.get_secret_value()}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=600,
    )
    assert report.returncode == 0, report.stdout[-4000:] + report.stderr[-2000:]
    cases = re.search(r"(\d+) generated, (\d+) passed", report.stdout)
    assert cases and cases.group(1) == cases.group(2) and int(cases.group(1)) > 100
    assert "Tested: 7" in report.stdout, report.stdout  # every operation was fuzzed
