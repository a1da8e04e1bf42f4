"""`miroir dev` as a user runs it: a real process tree, driven with the SDK, stopped by a signal."""

from __future__ import annotations

import os
import queue
import re
import signal
import socket
import subprocess
import threading
import time
import uuid

import httpx
import meilisearch
import pytest

from miroir.cli.dev import free_port, miroir_command

pytestmark = pytest.mark.acceptance

START_PATIENCE_SECONDS = 30.0
STOP_PATIENCE_SECONDS = 20.0


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rsplit(") ", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


def processes_with_marker(marker: str) -> list[int]:
    """Live processes whose environment carries `marker` (children inherit it)."""
    needle = f"MIROIR_TEST_MARKER={marker}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/environ", "rb") as environ:
                    if needle in environ.read().split(b"\0") and alive(int(entry)):
                        found.append(int(entry))
            except OSError:
                continue
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(") ", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Output:
    """Collects a child's stdout on a thread, so reads can wait with a patience limit."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.lines: queue.Queue[str] = queue.Queue()
        self.text = ""
        threading.Thread(target=self._pump, args=(process.stdout,), daemon=True).start()

    def _pump(self, stream) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put("")  # end of output

    def read_until(self, marker: str, patience: float = START_PATIENCE_SECONDS) -> str:
        give_up = time.monotonic() + patience
        while marker not in self.text:
            remaining = give_up - time.monotonic()
            assert remaining > 0, f"no {marker!r} yet; output so far:\n{self.text}"
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            assert line, f"output ended before {marker!r}; output:\n{self.text}"
            self.text += line
        return self.text


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_miroir_dev_serves_a_working_cluster_and_stops_everything_on_a_signal(stop_signal):
    port = free_port()
    marker = uuid.uuid4().hex
    dev = subprocess.Popen(
        miroir_command(
            "dev", "--port", str(port), "--nodes", "3", "--groups", "1", "--rf", "1",
            "--shards", "8", "--master-key", "dev-master-key", "--admin-key", "dev-admin-key",
        ),
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True,
        env={**os.environ, "MIROIR_TEST_MARKER": marker},
    )
    nodes: list[int] = []
    try:
        output = Output(dev)
        banner = output.read_until("Press Ctrl-C to stop.")
        endpoint = re.search(r"Miroir is running at (\S+)", banner).group(1)
        assert endpoint == f"http://127.0.0.1:{port}"
        assert "master key: dev-master-key" in banner and "admin key:  dev-admin-key" in banner
        assert len(re.findall(r"node-\d: http://127\.0\.0\.1:\d+ \(group 0\)", banner)) == 3
        nodes = children_of(dev.pid)
        assert len(nodes) == 3, "one child process per devnode"
        assert sorted(processes_with_marker(marker)) == sorted([dev.pid, *nodes])

        client = meilisearch.Client(endpoint, "dev-master-key")
        index = client.index("things")
        task = client.wait_for_task(index.add_documents([{"id": i} for i in range(50)]).task_uid)
        assert task.status == "succeeded", task.error
        assert dict(index.get_document(42)) == {"id": 42}

        metrics_url = re.search(r"metrics:\s+(\S+)", banner).group(1)
        assert "miroir_requests_total" in httpx.get(metrics_url, timeout=10).text

        dev.send_signal(stop_signal)
        assert dev.wait(STOP_PATIENCE_SECONDS) == 0
        assert "miroir dev: stopped" in output.read_until("miroir dev: stopped")
        give_up = time.monotonic() + STOP_PATIENCE_SECONDS
        while processes_with_marker(marker) and time.monotonic() < give_up:
            time.sleep(0.05)
        assert processes_with_marker(marker) == [], "a devnode outlived miroir dev"
    finally:
        if dev.poll() is None:
            os.killpg(dev.pid, signal.SIGKILL)
            dev.wait()
        for pid in nodes:
            if alive(pid):
                os.killpg(pid, signal.SIGKILL)
        dev.stdout.close()


def test_a_busy_proxy_port_is_a_clear_error_and_leaves_no_devnode():
    squatter = socket.socket()
    squatter.bind(("127.0.0.1", 0))
    squatter.listen()
    try:
        port = squatter.getsockname()[1]
        marker = uuid.uuid4().hex
        dev = subprocess.Popen(
            miroir_command("dev", "--port", str(port), "--nodes", "2"),
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
            env={**os.environ, "MIROIR_TEST_MARKER": marker},
        )
        try:
            _, err = dev.communicate(timeout=START_PATIENCE_SECONDS)
        finally:
            if dev.poll() is None:
                os.killpg(dev.pid, signal.SIGKILL)
                dev.wait()
        assert dev.returncode == 1
        assert f"cannot serve: [Errno 98] 127.0.0.1:{port}: Address already in use" in err
        assert "Traceback" not in err
        assert processes_with_marker(marker) == [], "a devnode outlived miroir dev"
    finally:
        squatter.close()
