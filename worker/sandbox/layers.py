"""Which isolation layers the sandbox enforces on this machine, and the fail-closed start-up check."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from engine import landlock
from service.settings import Settings, get_settings

log = logging.getLogger("modelpress.sandbox")


@dataclass(frozen=True)
class Layers:
    """The layers a sandboxed child gets: Landlock, and/or a switch to an unprivileged user."""

    landlock: bool
    user: tuple[int, int] | None

    @property
    def isolated(self) -> bool:
        """True when at least one layer keeps the child away from the service's files."""
        return self.landlock or self.user is not None

    def describe(self) -> str:
        """The layers in words, for the start-up log line."""
        names = [f"Landlock ABI {landlock.abi_version()}"] if self.landlock else []
        if self.user is not None:
            names.append(f"uid {self.user[0]} / gid {self.user[1]}")
        return " + ".join(names) or "none"


class SandboxUnavailable(RuntimeError):
    """No isolation layer is available and the operator did not opt out."""


_active: Layers | None = None


def active_layers() -> Layers:
    """The layers of this process, detected once (the start-up check does it before the pool forks)."""
    global _active
    if _active is None:
        _active = detect(get_settings())
    return _active


def detect(settings: Settings) -> Layers:
    """Probe each layer the settings allow; a layer that cannot actually run a child is left out."""
    use_landlock = settings.sandbox_landlock and landlock.abi_version() >= 1
    user = None
    if settings.sandbox_drop_user and os.geteuid() == 0:
        candidate = (settings.sandbox_uid, settings.sandbox_gid)
        if _user_can_run(candidate):
            user = candidate
    return Layers(landlock=use_landlock, user=user)


def _user_can_run(user: tuple[int, int]) -> bool:
    """Start one child as the sandbox user: the interpreter, packages and code must be readable to it."""
    from worker.sandbox.runner import SandboxFailure, SandboxLimits, run_sandboxed

    try:
        run_sandboxed(
            "worker.sandbox.layers:probe",
            {},
            limits=SandboxLimits(memory_bytes=2 * 1024**3, wall_seconds=60),
            layers=Layers(landlock=False, user=user),
        )
    except (SandboxFailure, OSError) as failure:
        log.warning(
            "sandbox.user_layer_unavailable: uid %s cannot run the worker's interpreter and code (%s); "
            "make the interpreter, the virtual environment and the code readable to it to enable this layer",
            user[0],
            failure,
        )
        return False
    return True


def probe() -> str:
    """The entry the user-layer probe runs: importing the child's own modules is the test."""
    return "ok"


def protect_data_home(settings: Settings) -> None:
    """Make the service's data folders private to the service's user (0700), where it owns them."""
    for folder in {settings.home.resolve(), settings.resolved_storage_dir, settings.broker_folder}:
        try:
            if folder.is_dir() and folder.stat().st_uid == os.geteuid():
                folder.chmod(0o700)
        except OSError:
            continue


def require_isolation(settings: Settings | None = None) -> Layers:
    """The worker's start-up check: refuse to run untrusted models without isolation (fail closed)."""
    global _active
    settings = settings or get_settings()
    protect_data_home(settings)
    _active = detect(settings)
    if _active.isolated:
        log.info("sandbox.layers %s", _active.describe())
        return _active
    if settings.sandbox_allow_unisolated:
        log.warning("sandbox.unisolated: no isolation layer; MODELPRESS_SANDBOX_ALLOW_UNISOLATED is set")
        return _active
    raise SandboxUnavailable(
        "no sandbox isolation layer is available: Landlock is "
        + (
            "disabled by MODELPRESS_SANDBOX_LANDLOCK"
            if not settings.sandbox_landlock
            else "not in this kernel"
        )
        + " and the switch to an unprivileged user is "
        + ("disabled by MODELPRESS_SANDBOX_DROP_USER" if not settings.sandbox_drop_user else "impossible")
        + " (the worker must run as root, and the interpreter and code must be readable to uid "
        + f"{settings.sandbox_uid}). Uploaded models are programs; refusing to run them unisolated. "
        + "Set MODELPRESS_SANDBOX_ALLOW_UNISOLATED=true to run without isolation anyway."
    )
