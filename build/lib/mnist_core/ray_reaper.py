"""End the Ray agents a killed driver leaves behind.

A driver that starts Ray on this machine owns its processes. When the driver is killed
(SIGKILL, an out-of-memory kill), Ray ends the raylet and the GCS with it, but its raylet's
two agents (ray::DashboardAgent, ray::RuntimeEnvAgent, ~85 MB each) are left running for
good. `python -m mnist_core.ray_reaper DRIVER_PID`, started by the driver before it starts Ray,
notes the agents of the driver's raylet, waits for the driver to end, gives Ray GRACE_S to
clean up, then ends the agents still running without their raylet.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

AGENTS = (b"ray::DashboardAgent", b"ray::RuntimeEnvAgent")
GRACE_S = 10
POLL_S = 1


def is_agent(pid: int) -> bool:
    """True if `pid` is (still) one of Ray's agents (not a process that took its number since)."""
    return cmdline(pid).startswith(AGENTS)


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid`."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _parent(int(entry.name)) == pid:
            found.append(int(entry.name))
    return found


def _stat(pid: int | None) -> list[str]:
    """/proc/PID/stat's fields after the command name: state, parent, ... ([] if it is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return []


def _parent(pid: int) -> int | None:
    fields = _stat(pid)
    return int(fields[1]) if len(fields) > 1 else None


def cmdline(pid: int | None) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    """True while `pid` runs (a zombie has ended)."""
    fields = _stat(pid)
    return bool(fields) and fields[0] != "Z"


def orphaned(pid: int) -> bool:
    """True if the agent `pid` has lost its raylet (Ray ends a raylet with its driver)."""
    return b"raylet" not in cmdline(_parent(pid))


def reap(driver: int) -> int:
    """While `driver` runs, note the agents of the raylet it started; when it has ended, give Ray
    GRACE_S, then end those agents still running without their raylet. Returns how many."""
    agents: set[int] = set()
    while alive(driver):
        for raylet in children(driver):
            if b"raylet" in cmdline(raylet):
                agents.update(pid for pid in children(raylet) if is_agent(pid))
        time.sleep(POLL_S)
    time.sleep(GRACE_S)
    ended = 0
    for pid in sorted(agents):
        if is_agent(pid) and orphaned(pid):
            try:
                os.kill(pid, signal.SIGKILL)
                ended += 1
            except OSError:
                pass
    return ended


if __name__ == "__main__":
    try:
        (driver_pid,) = (int(word) for word in sys.argv[1:])
    except ValueError:
        sys.exit("usage: python -m mnist_core.ray_reaper DRIVER_PID")
    reap(driver_pid)
