"""classifier.management.local_services.stop: how `make run` stops the processes it started."""

from __future__ import annotations

import signal
import subprocess
import sys

from classifier.management.local_services import stop

# A child that notes a SIGTERM in its output and takes 0.5 s to shut down after SIGINT,
# as a Celery process does.
CHILD = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: (print("TERM", flush=True), sys.exit(1)))
signal.signal(signal.SIGINT, lambda *_: (time.sleep(0.5), sys.exit(0)))
print("ready", flush=True)
while True:
    time.sleep(0.05)
"""


def started() -> subprocess.Popen:
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    return child


def test_children_already_stopping_after_ctrl_c_are_left_to_finish():
    child = started()
    child.send_signal(signal.SIGINT)  # what the terminal does to the whole group
    stop([child], exiting_seconds=5.0)
    assert child.returncode == 0  # it finished its own shutdown
    assert "TERM" not in child.stdout.read()


def test_children_that_got_no_signal_are_terminated_at_once():
    child = started()
    stop([child], exiting_seconds=0.0)
    assert "TERM" in child.stdout.read()
    assert child.returncode == 1


def test_a_child_that_ignores_sigterm_is_killed_after_the_grace_period():
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout.readline().strip() == "ready"
    stop([child], grace_seconds=0.5)
    assert child.returncode == -signal.SIGKILL
