"""Entry point of the stream worker process."""

from __future__ import annotations

import faust

from homeloop.settings import Settings
from streams.app import create_app


def run_worker(settings: Settings) -> None:
    """Run the faust worker until SIGINT/SIGTERM; blocks, then exits the process."""
    app = create_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.lower(), quiet=True)
    worker.execute_from_commandline()
