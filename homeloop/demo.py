"""``homeloop demo``: the whole loop, live, on local services.

Starts (or finds) the broker, Redis and PostgreSQL, provisions them, runs the stream
worker and the API as their own processes (as they are deployed), trains a first model
when there is no champion, then runs the simulator in this process and prints a line
every few seconds until Ctrl-C or ``--duration``.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from rich.console import Console

from homeloop.settings import Settings
from homeloop.simulate import run_simulator
from homeloop.stack import LocalStack, provision
from homeloop.stack.ports import free_port
from homeloop.stack.process import ServiceProcess

logger = logging.getLogger(__name__)
console = Console(soft_wrap=True)

READY_TIMEOUT_S = 180.0


class Processes:
    """The demo's child processes: started with the resolved settings, stopped together."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.children: dict[str, ServiceProcess] = {}

    def start(self, name: str, *args: str) -> ServiceProcess:
        child = ServiceProcess(
            name,
            [sys.executable, "-m", "homeloop.cli", *args],
            self.log_dir / f"{name}.log",
            env=self.env,
        )
        self.children[name] = child
        return child

    def check_alive(self) -> None:
        for name, child in self.children.items():
            if name != "train" and not child.alive():
                raise RuntimeError(
                    f"{name} exited with {child.popen.returncode}; see {child.log_path}"
                )

    def stop(self) -> None:
        for child in self.children.values():
            child.stop()


def wait_ready(api_url: str, processes: Processes) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:
        processes.check_alive()
        try:
            response = httpx.get(f"{api_url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = response.text
        except httpx.HTTPError as exc:
            last = str(exc)
        time.sleep(0.5)
    raise RuntimeError(f"serving not ready after {READY_TIMEOUT_S:.0f}s: {last}")


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run_demo(
    settings: Settings, duration: float | None, rate: float, shock: str | None = None
) -> None:
    # SIGTERM unwinds like Ctrl-C, so every child and local service is stopped on the way out.
    signal.signal(signal.SIGTERM, _interrupt)
    started = time.monotonic()
    workdir = settings.data_dir.resolve()
    with LocalStack(settings, workdir / "stack") as resolved:
        resolved = resolved.model_copy(
            update={
                "api_port": free_port(),
                "worker_web_port": free_port(),
                "data_dir": workdir,
                # one simulated time line for every process: it starts now
                "sim_started_at": resolved.sim_started_at or time.time(),
            }
        )
        console.print(f"[dim]services up in {time.monotonic() - started:.1f}s[/]")
        provision(resolved)
        processes = Processes(resolved.as_env(), workdir / "logs")
        try:
            trainer = processes.start("train", "train", "--if-missing")
            processes.start("worker", "worker")
            processes.start("serve", "serve")
            processes.start("trainer", "trainer")  # serves retrain requests from here on
            if trainer.popen.wait() != 0:
                raise RuntimeError(f"training failed; see {trainer.log_path}")
            console.print((processes.log_dir / "train.log").read_text().strip().splitlines()[-1])
            api_url = f"http://{resolved.api_host}:{resolved.api_port}"
            wait_ready(api_url, processes)
            console.print(
                f"[bold green]homeloop is live[/] in {time.monotonic() - started:.0f}s\n"
                f"  API docs      {api_url}/docs\n"
                f"  API metrics   {api_url}/metrics\n"
                f"  worker        http://{resolved.worker_web_bind}:{resolved.worker_web_port}/metrics\n"
                f"  MLflow store  {resolved.tracking_uri}\n"
                f"  logs          {processes.log_dir}\n"
                "Ctrl-C stops everything."
            )
            run_simulator(resolved, api_url=api_url, duration=duration, rate=rate, shock=shock)
        finally:
            processes.stop()
