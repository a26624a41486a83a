"""The demo cleans up whatever happens to its output (issue 13 item 13).

``./scripts/demo | tee demo.log`` then Ctrl-C: the terminal's SIGINT reaches the whole process
group, ``tee`` dies with it, and the demo's next print raised BrokenPipeError, which skipped
``network.down()``: five routers and the namespace stayed behind. Here the demo runs as in a
terminal (its own process group), its stdout and stderr pipes are closed once it is ready, and
the group gets SIGINT; then nothing of the network may be left: no namespace, no state
directory, no process whose command line names it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testnet import netns
from testnet.network import netns_name
from testnet.status import state_dir_for
from tests.conftest import skip_unless_testnet_possible

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(600)]
REPO = Path(__file__).resolve().parents[2]


def processes_naming(marker: str) -> list[str]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(f"{entry.name}: {cmdline[:200]}")
    return found


def test_demo_cleans_up_after_sigint_with_its_output_pipes_closed():
    skip_unless_testnet_possible()
    name = f"demo-{os.urandom(3).hex()}"
    state_dir = state_dir_for(name)
    demo = subprocess.Popen(
        [sys.executable, "-m", "testnet", "demo", "--name", name],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # like a terminal's foreground job: Ctrl-C goes to the group
    )
    try:
        assert demo.stdout is not None and demo.stderr is not None
        seen = b""
        deadline = time.monotonic() + 400
        while b"Press Ctrl-C" not in seen:
            line = demo.stdout.readline()
            assert line, f"demo ended before it was ready: {seen.decode(errors='replace')}"
            seen += line
            assert time.monotonic() < deadline, "demo not ready within 400 s"
        assert netns.exists(netns_name(name)) and state_dir.exists()
        assert processes_naming(str(state_dir)), "no router process found while running"
        # The reader of both pipes goes away (tee killed by the same Ctrl-C) ...
        demo.stdout.close()
        demo.stderr.close()
        # ... and the terminal's SIGINT reaches the whole group.
        os.killpg(demo.pid, signal.SIGINT)
        demo.wait(timeout=180)
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
            demo.wait()
        leftovers = processes_naming(str(state_dir))
        if leftovers or state_dir.exists() or netns.exists(netns_name(name)):
            subprocess.run(
                [sys.executable, "-m", "testnet", "down", "--name", name], cwd=REPO, check=False
            )
    assert not netns.exists(netns_name(name)), "the namespace was left behind"
    assert not state_dir.exists(), f"{state_dir} was left behind"
    assert leftovers == [], f"processes left behind: {leftovers}"
