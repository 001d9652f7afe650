"""What a person sees on a terminal: counts in words, the confirmation, wrapping, the prompt.

The pure parts are checked as functions; the prompt, the progress bar and Ctrl-C in a real
terminal (tmux), as a person meets them.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from batcher.lineplan import LinePlan, duration, finish_estimate
from batcher.model import Problem, Status
from batcher.pipeline import Report
from batcher.render import confirmation, plural, validate_summary, wrapped
from batcher.running import Preview
from tests.runs import LINE_A, recipient, sheet


@pytest.mark.parametrize(
    ("count", "noun", "many", "shown"),
    [
        (0, "row", "", "0 rows"),
        (1, "row", "", "1 row"),
        (2, "row", "", "2 rows"),
        (1, "message", "", "1 message"),
        (1, "duplicate row", "", "1 duplicate row"),
        (3, "reply", "replies", "3 replies"),
    ],
)
def test_plural(count: int, noun: str, many: str, shown: str) -> None:
    """Every count is printed with its noun in the right number."""
    assert plural(count, noun, many) == shown


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0.2, "1 s"),
        (7, "7 s"),
        (89.5, "90 s"),
        (90, "2 min"),
        (3000, "50 min"),
        (5400, "1 h 30 min"),
        (86_340, "23 h 59 min"),
        (86_400, "1 day 0 h 0 min"),
        (175_200, "2 days 0 h 40 min"),
        (175_201, "2 days 0 h 41 min"),
    ],
)
def test_duration(seconds: float, shown: str) -> None:
    """Durations are rounded up, in the largest unit that reads well."""
    assert duration(seconds) == shown


def preview(**counts: int) -> Preview:
    """A preview of 14 messages for 13 rows from two lines, with these counts of rows."""
    return Preview(
        requests=14,
        first_touches=12,
        lines=(
            LinePlan("+15555550100", 7, 1, finish_estimate(7, 600, 30)),
            LinePlan("+15555550101", 5, 1, finish_estimate(5, 600, 30)),
        ),
        already_sent=counts.get("already_sent", 0),
        rows=13,
        invalid=counts.get("invalid", 0),
        duplicate=counts.get("duplicate", 0),
    )


@pytest.mark.parametrize(
    ("counts", "not_sent"),
    [
        ({}, None),
        ({"invalid": 1}, "Not sent: 1 invalid row."),
        ({"invalid": 3, "duplicate": 1}, "Not sent: 3 invalid rows and 1 duplicate row."),
        (
            {"invalid": 2, "duplicate": 2, "already_sent": 1},
            "Not sent: 2 invalid rows, 2 duplicate rows and 1 row already sent.",
        ),
    ],
)
def test_confirmation_counts_what_is_not_sent(counts: dict[str, int], not_sent: str | None) -> None:
    """The confirmation: what goes where, what is not sent (in rows), and how long."""
    lines = confirmation(preview(**counts), "sandbox", 2.0).splitlines()
    assert lines[:4] == [
        "About to send 14 messages for 13 rows to sandbox, 12 of them to new chats, from 2 lines:",
        "  line +15555550100: 7 new chats, 1 follow-up; about 60 min at 30 a day, 10 min apart",
        "  line +15555550101: 5 new chats, 1 follow-up; about 40 min at 30 a day, 10 min apart",
        "  (Chert's documented pace for a line: 30 new chats a day, 10 min apart; "
        "--line-daily and --line-gap set yours.)",
    ]
    assert lines[4:-1] == ([not_sent] if not_sent else [])
    assert lines[-1] == "At --rate 2 this takes about 7 s, longer if Chert asks to wait."


def test_confirmation_without_a_rate_limit() -> None:
    """--rate 0 has no estimate: it says so instead."""
    shown = confirmation(preview(), "sandbox", 0.0)
    assert shown.endswith("No rate limit (--rate 0): as fast as Chert answers.")


PROBLEM = Problem(
    12,
    "To",
    "415-555-12",
    1003,
    "'415-555-12' is not a valid phone number. Numbers without a country code are read "
    "as US numbers (--region US).",
)


@pytest.mark.parametrize(
    ("width", "lines"),
    [
        (
            0,
            [
                "  row 12, column To: '415-555-12' is not a valid phone number. Numbers without "
                "a country code are read as US numbers (--region US)."
            ],
        ),
        (
            60,
            [
                "  row 12, column To: '415-555-12' is not a valid phone",
                "      number. Numbers without a country code are read as US",
                "      numbers (--region US).",
            ],
        ),
    ],
)
def test_problem_lines_wrap_at_the_width(width: int, lines: list[str]) -> None:
    """At a terminal's width, a problem wraps with a hanging indent; without one it does not."""
    assert wrapped(PROBLEM.describe(), width).splitlines() == lines


def test_validate_summary_wraps_its_problems() -> None:
    """validate's problems fit the width it is given; its counts are in words."""
    report = Report(Path("in.csv"), Path("in.results.csv"), planned_only=True)
    report.by_status = Counter({Status.INVALID: 1})
    report.by_code = Counter({1003: 1})
    report.problems = [PROBLEM]
    text = validate_summary(report, width=60)
    assert text.startswith("in.csv: 1 row checked. Nothing was sent.")
    problems = text.split("Problems:\n")[1].split("\n\n")[0].splitlines()
    assert problems == wrapped(PROBLEM.describe(), 60).splitlines()
    assert max(len(line) for line in problems) <= 60


# --- in a real terminal ---------------------------------------------------------------------

TMUX = shutil.which("tmux")
needs_tmux = pytest.mark.skipif(TMUX is None, reason="tmux is not installed (.ci/run installs it)")


class Terminal:
    """A command running in a 100 x 40 tmux terminal of its own, watched as a person would."""

    def __init__(self, folder: Path) -> None:
        assert TMUX is not None
        self.folder = folder
        self.exit_file = folder / "exit-code"
        config = folder / "tmux.conf"
        config.write_text("set -g remain-on-exit on\nset -g history-limit 5000\n")
        # A server of its own, its socket in a short folder of its own (a socket's path
        # is limited to about 100 characters), removed afterwards.
        self.sockets = Path(tempfile.mkdtemp(prefix="chert-tmux-"))
        self.env = {**os.environ, "TMUX_TMPDIR": str(self.sockets)}
        self.base = [TMUX, "-L", "test", "-f", str(config)]

    def start(self, args: list[str]) -> None:
        """Start `chert-batch ARGS` in the terminal, in the test's folder."""
        command = shlex.join([sys.executable, "-m", "batcher", *args])
        script = f"cd {shlex.quote(str(self.folder))} && {command}; echo $? > exit-code"
        self._tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "40", script)

    def send(self, *keys: str) -> None:
        """Type keys, as tmux names them ("y", "Enter", "C-c")."""
        self._tmux("send-keys", "-t", "t", *keys)

    def kill(self, signum: int) -> None:
        """Send a signal to the command (the child of the shell the terminal runs)."""
        shell = self._tmux("list-panes", "-t", "t", "-F", "#{pane_pid}").strip()
        children = Path(f"/proc/{shell}/task/{shell}/children").read_text().split()
        os.kill(int(children[0]), signum)

    def screen(self) -> str:
        """What the terminal shows, long lines joined."""
        return self._tmux("capture-pane", "-p", "-J", "-S", "-", "-t", "t")

    def wait_for(self, text: str, timeout: float = 60) -> str:
        """Wait until the screen shows `text`; return the screen."""
        deadline = time.monotonic() + timeout
        while text not in (shown := self.screen()):
            assert time.monotonic() < deadline, f"{text!r} never appeared:\n{shown}"
            time.sleep(0.05)
        return shown

    def exit_code(self, timeout: float = 60) -> int:
        """Wait for the command to end; its exit code."""
        deadline = time.monotonic() + timeout
        while not self.exit_file.exists() or not self.exit_file.read_text().strip():
            assert time.monotonic() < deadline, f"still running:\n{self.screen()}"
            time.sleep(0.05)
        return int(self.exit_file.read_text())

    def close(self) -> None:
        """Stop the terminal and whatever still runs in it."""
        subprocess.run([*self.base, "kill-server"], env=self.env, capture_output=True, check=False)
        shutil.rmtree(self.sockets, ignore_errors=True)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(
            [*self.base, *args], env=self.env, capture_output=True, text=True, check=True
        )
        return done.stdout


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[Terminal]:
    """A terminal of the test's own, closed afterwards."""
    shown = Terminal(tmp_path)
    yield shown
    shown.close()


def small_sheet(folder: Path) -> Path:
    """Three rows: a direct message, a group row split in two messages, a bad number."""
    rows = [
        [LINE_A, recipient(1), "Hello", ""],
        [LINE_A, f"{recipient(2)};{recipient(3)}", "Hi all", "https://example.com/demo"],
        [LINE_A, "415-555-12", "Hello", ""],
    ]
    return sheet(folder / "in.csv", rows, headers=["From", "To", "Text", "Link"])


@needs_tmux
def test_confirm_then_watch_the_bar_and_the_summary(terminal: Terminal) -> None:
    """The prompt counts what is not sent; the bar and the summary both count messages."""
    small_sheet(terminal.folder)
    terminal.start(["run", "in.csv", "--sandbox", "--rate", "1"])
    asked = terminal.wait_for("Send them? [y/N]: ")
    assert "About to send 3 messages for 2 rows to sandbox, 2 of them to new chats" in asked
    assert "Not sent: 1 invalid row." in asked
    assert (
        f"line {LINE_A}: 2 new chats, 1 follow-up; about 10 min at 30 a day, 10 min apart" in asked
    )
    assert "At --rate 1 this takes about 3 s" in asked
    terminal.send("y", "Enter")
    terminal.wait_for("/3 messages")  # the bar, while it sends
    assert terminal.exit_code() == 1  # the invalid row
    shown = terminal.screen()
    assert "3/3 messages" in shown
    assert "in.csv: 3 rows; 3 messages sent in this run." in shown
    assert (terminal.folder / "in.sandbox.results.csv").exists()


@needs_tmux
def test_the_confirmation_previews_what_a_limited_run_sends(terminal: Terminal) -> None:
    """The prompt shows the first messages as recipients will see them, and what --limit holds."""
    small_sheet(terminal.folder)
    terminal.start(["run", "in.csv", "--sandbox", "--limit", "1"])
    asked = terminal.wait_for("Send them? [y/N]: ")
    assert "About to send 1 message for 1 row to sandbox" in asked
    assert (
        "--limit 1: this run sends 1 of the 2 rows to send (a chat's rows go together); the "
        "rest stay pending."
    ) in asked
    assert "Preview: the first message to send, as recipients will see them" in asked
    assert f"  row 2: {LINE_A} -> {recipient(1)}: Hello\n" in asked
    terminal.send("n", "Enter")
    assert terminal.exit_code() == 1


@needs_tmux
@pytest.mark.parametrize(
    ("keys", "code", "said"),
    [
        (["n", "Enter"], 1, "in.csv: nothing was sent (not confirmed)."),
        (["Enter"], 1, "in.csv: nothing was sent (not confirmed)."),
        (["C-c"], 3, "Stopped (Ctrl-C): nothing was sent. To start again: chert-batch run"),
        (["C-d"], 1, "in.csv: nothing was sent (not confirmed)."),
    ],
)
def test_answers_at_the_prompt(terminal: Terminal, keys: list[str], code: int, said: str) -> None:
    """No, an empty answer or Ctrl-D send nothing (exit 1); Ctrl-C stops (exit 3)."""
    small_sheet(terminal.folder)
    terminal.start(["run", "in.csv", "--sandbox"])
    terminal.wait_for("Send them? [y/N]: ")
    terminal.send(*keys)
    assert terminal.exit_code() == code, terminal.screen()
    assert said in terminal.screen()
    assert "Traceback" not in terminal.screen()


@needs_tmux
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_stop_signal_at_the_prompt(terminal: Terminal, signum: signal.Signals) -> None:
    """SIGTERM or SIGHUP while the question waits: exit 3 at once, nothing sent."""
    small_sheet(terminal.folder)
    terminal.start(["run", "in.csv", "--sandbox"])
    terminal.wait_for("Send them? [y/N]: ")
    terminal.kill(signum)
    assert terminal.exit_code() == 3, terminal.screen()
    assert f"Stopped ({signum.name}): nothing was sent." in terminal.screen()
    assert not (terminal.folder / "in.sandbox.results.csv").exists()
