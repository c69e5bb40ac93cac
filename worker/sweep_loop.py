"""`python -m worker.sweep_loop`: the sweeper in a process of its own, so it outlives any worker.

Each pass re-queues jobs whose lease ran out, publishes what the broker lost, prunes the rows of
workers that stopped beating and deletes uploads a killed API abandoned. `modelpress serve`
supervises it; compose runs it as `sweeper`, with `--heartbeat FILE` touched after every pass for
its healthcheck.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
from pathlib import Path

from service.observability.logging import configure_logging
from service.settings import Settings, get_settings
from service.storage import get_store
from service.workers import registry
from worker import records, sweeper

log = logging.getLogger("modelpress.sweeper")


def sweep_once(settings: Settings) -> None:
    """One pass; a failure (database down) is logged and the next pass tries again."""
    try:
        sweeper.sweep(settings)
        if pruned := records.call(registry.prune, timeout_s=settings.worker_timeout_s):
            log.info("pruned %d dead worker rows", pruned)
        if removed := get_store().remove_stale_uploads(settings.stale_temp_after_s):
            log.info("removed %d abandoned uploads (and their multipart parts)", removed)
    except Exception as exc:
        log.warning("sweep failed: %s: %s", type(exc).__name__, exc)


def main(argv: list[str] | None = None) -> None:
    """Sweep every `sweep_interval_s` until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(prog="python -m worker.sweep_loop", description=__doc__)
    parser.add_argument("--heartbeat", type=Path, help="a file touched after every pass (liveness)")
    heartbeat: Path | None = parser.parse_args(argv).heartbeat
    settings = get_settings()
    configure_logging(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    log.info("sweeper running every %s s", settings.sweep_interval_s)
    while True:
        sweep_once(settings)
        if heartbeat is not None:
            heartbeat.touch()  # a pass that failed still counts: the loop is alive, the log says why
        if stop.wait(settings.sweep_interval_s):
            return


if __name__ == "__main__":
    main()
