"""Trials a dead process left RUNNING: heartbeats, and requeueing trials whose beat stopped.

Each process running a trial records its ``host:pid`` and refreshes a heartbeat (a user
attribute of the trial, so every Optuna storage carries it) from a background thread. A
RUNNING trial is requeued (failed, and its parameters queued again) when

- its process ran on this host and is gone (or is this process, which runs nothing while it
  looks), at once; or
- its heartbeat is older than the grace period (:data:`STALE_AFTER_S` by default), whatever
  its host or PID: a process on another host or container, or a PID since reused, cannot be
  asked whether it lives, only heard beating. The age is read on two clocks, the heartbeat's
  time against this host's, and how long this process has seen it unchanged, so a clock
  running ahead delays a requeue by one grace period at most (one running behind by more than
  the grace period makes its trials look dead: the hosts' clocks must roughly agree).

A process whose beat stops for longer than the grace period while it lives (a machine
suspended, a network partition) loses its trial: it is run again, and the late result is
dropped.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .._checks import check_number

Log = Callable[[str], None]

#: Seconds a RUNNING trial may go without a heartbeat before it is requeued.
STALE_AFTER_S = 300.0
#: The longest interval between two heartbeats.
BEAT_S = 30.0
OWNER, HEARTBEAT, BEAT_INTERVAL, PID_SPACE = "owner", "heartbeat", "heartbeat_s", "pid_space"
#: User attributes that say who runs a trial, not what it found: left out of its record.
BEAT_ATTRS = (HEARTBEAT, BEAT_INTERVAL, PID_SPACE)


def owner() -> str:
    """This process as a trial's owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_space() -> int | None:
    """This process's PID namespace (Linux), so that containers sharing a host name do not
    take each other's PIDs for their own; None where there is none to read."""
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return None


def beat_interval(stale_after_s: float) -> float:
    """How often a trial beats: often enough that a few missed beats are not a death."""
    return min(BEAT_S, stale_after_s / 4)


@contextlib.contextmanager
def heartbeat(trial: Any, stale_after_s: float = STALE_AFTER_S) -> Iterator[None]:
    """Mark ``trial`` as this process's and refresh its heartbeat while the body runs."""
    interval = beat_interval(stale_after_s)
    trial.set_user_attr(OWNER, owner())
    trial.set_user_attr(PID_SPACE, pid_space())
    trial.set_user_attr(BEAT_INTERVAL, interval)
    trial.set_user_attr(HEARTBEAT, time.time())
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # the trial was finished (requeued elsewhere), or storage failed
                return

    thread = threading.Thread(target=beat, name=f"slimkit-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process runs no trial while it looks for stale ones
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: another user's process, alive
        return True
    return True


@dataclass
class StaleTrials:
    """Which RUNNING trials no process runs any more (see the module's docstring).

    Attributes:
        stale_after_s: the grace period, in seconds.
    """

    stale_after_s: float = STALE_AFTER_S
    #: trial number → (the heartbeat last read, this process's monotonic time it was first read)
    _seen: dict[int, tuple[Any, float]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        check_number("stale_after_s", self.stale_after_s, positive=True)

    def reason(self, trial: Any, now: float | None = None) -> str | None:
        """Why ``trial`` (a RUNNING FrozenTrial) is stale, or None while it may be alive."""
        attrs = trial.user_attrs
        host, _, pid = str(attrs.get(OWNER, "")).partition(":")
        here = host == socket.gethostname() and attrs.get(PID_SPACE) == pid_space()
        if here and pid.isdigit() and not _alive(int(pid)):
            return f"its process {pid} on this host is gone"
        beat = attrs.get(HEARTBEAT)
        if not isinstance(beat, int | float) and trial.datetime_start is not None:
            beat = trial.datetime_start.timestamp()  # a trial from before heartbeats
        if not isinstance(beat, int | float):
            return None
        interval = attrs.get(BEAT_INTERVAL, 0.0)
        limit = max(self.stale_after_s, 3 * interval if isinstance(interval, int | float) else 0)
        seen, since = self._seen.setdefault(trial.number, (beat, time.monotonic()))
        if seen != beat:
            self._seen[trial.number] = (beat, time.monotonic())
            since = time.monotonic()
        silent = max((now or time.time()) - beat, time.monotonic() - since)
        if silent > limit:
            who = f" on {host}" if host else ""
            return f"no heartbeat from its process{who} for {silent:.0f} s (limit {limit:.0f} s)"
        return None

    def requeue(self, study: Any, log: Log) -> int:
        """Fail every stale RUNNING trial of ``study`` and queue its parameters again;
        returns how many were requeued."""
        import optuna

        running = optuna.trial.TrialState.RUNNING
        requeued = 0
        for trial in study.get_trials(deepcopy=False, states=(running,)):
            why = self.reason(trial)
            if why is None:
                continue
            try:
                study.tell(trial.number, state=optuna.trial.TrialState.FAIL)
            except (ValueError, RuntimeError):  # another process requeued it first
                continue
            study.enqueue_trial(trial.params)
            requeued += 1
            log(f"search: trial {trial.number} was interrupted ({why}); it runs again")
        return requeued

    @staticmethod
    def lost(study: Any, number: int) -> bool:
        """Whether trial ``number``, which this process ran, was requeued meanwhile (its
        heartbeat went silent for longer than another process allowed)."""
        import optuna

        running = optuna.trial.TrialState.RUNNING
        return not any(t.number == number for t in study.get_trials(deepcopy=False,
                                                                    states=(running,)))  # fmt: skip

    def wait(self, study: Any, log: Log, poll_s: float = 5.0) -> bool:
        """Wait while other processes run trials of ``study``; True as soon as one of them
        was requeued (there is work again), False when none runs any more."""
        import optuna

        running = (optuna.trial.TrialState.RUNNING,)
        while trials := study.get_trials(deepcopy=False, states=running):
            if self.requeue(study, log):
                return True
            owners = ", ".join(f"{t.number} ({t.user_attrs.get(OWNER, '?')})" for t in trials)
            log(
                f"search: waiting for trials other workers are running: {owners}; a trial "
                f"without a heartbeat for {self.stale_after_s:.0f} s runs again"
            )
            time.sleep(min(poll_s, self.stale_after_s / 2))
        return False
