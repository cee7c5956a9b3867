"""Runs record the process that owns them; a top-level run marks dead owners' runs KILLED."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from sparkmlops.tracking.owners import (
    TAG_HOST,
    TAG_PID,
    TAG_PROCESS_START,
    owner_tags,
    process_start,
    process_state,
)

HOST = socket.gethostname()


def test_owner_tags_name_this_process():
    tags = owner_tags()

    assert tags[TAG_HOST] == HOST
    assert tags[TAG_PID] == str(os.getpid())
    assert float(tags[TAG_PROCESS_START]) == pytest.approx(process_start(os.getpid()), abs=0.01)


def test_an_exited_process_is_not_alive_reaped_or_not(dead_pid):
    zombie = subprocess.Popen(["true"])
    try:
        for _ in range(200):  # until it has exited; not reaped: a zombie
            if Path(f"/proc/{zombie.pid}/stat").read_text().split(") ")[1][0] == "Z":
                break
            time.sleep(0.01)
        assert process_state(zombie.pid) == (False, None)
    finally:
        zombie.wait()
    assert process_state(dead_pid) == (False, None)
    assert process_state(os.getpid()) == (True, process_start(os.getpid()))
