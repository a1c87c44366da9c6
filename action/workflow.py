"""Talking to the Actions runner: workflow commands on stdout, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY.

Formats follow @actions/core: command data escapes %, CR and LF; property values also escape `:`
and `,`; multiline outputs use the `name<<DELIMITER` heredoc form with a random delimiter.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def format_command(name: str, message: str = "", **props: str) -> str:
    shown = ",".join(f"{k}={escape_property(v)}" for k, v in props.items() if v)
    return f"::{name}{' ' + shown if shown else ''}::{escape_data(message)}\n"


def quoted(text: str) -> str:
    """`text` between ::stop-commands:: and its resume token."""
    token = f"rlm-{uuid.uuid4().hex}"
    body = text if text.endswith("\n") else text + "\n"
    return f"::stop-commands::{token}\n{body}::{token}::\n"


class Runner:
    """Workflow commands and files of one step. `out` is where the runner reads commands (stdout)."""

    def __init__(self, output_file: str | None, summary_file: str | None, out: TextIO | None = None):
        self.output_file = Path(output_file) if output_file else None
        self.summary_file = Path(summary_file) if summary_file else None
        self.out = out or sys.stdout
        self._in_group = False
        self._lock = threading.Lock()  # rollout events arrive on many threads

    def _write(self, text: str) -> None:
        with self._lock:
            self.out.write(text)
            self.out.flush()

    def command(self, name: str, message: str = "", **props: str) -> None:
        self._write(format_command(name, message, **props))

    def add_mask(self, *values: str | None) -> None:
        """Tell the runner to mask each value (every line of a multiline one) in the log."""
        for value in values:
            for line in (value or "").splitlines():
                if line.strip():
                    self.command("add-mask", line)

    def log(self, text: str) -> None:
        self._write(text if text.endswith("\n") else text + "\n")

    def group_block(self, title: str, text: str) -> None:
        """A whole group written at once, so concurrent agents' logs never interleave. The body is
        untrusted (model output, agent stdout): command processing is paused around it so a line
        like `::add-mask::` or `::error::` in it is shown, not obeyed."""
        self._write(format_command("group", title) + quoted(text) + format_command("endgroup"))

    def error(self, message: str, title: str = "") -> None:
        self.command("error", message, title=title)

    def warning(self, message: str, title: str = "") -> None:
        self.command("warning", message, title=title)

    def notice(self, message: str, title: str = "") -> None:
        self.command("notice", message, title=title)

    @contextmanager
    def group(self, title: str) -> Iterator[None]:
        """A collapsible section. The runner cannot nest groups, so an inner one is printed flat."""
        if self._in_group:
            yield
            return
        self._in_group = True
        self.command("group", title)
        try:
            yield
        finally:
            self.command("endgroup")
            self._in_group = False

    def set_outputs(self, values: Mapping[str, str]) -> None:
        """Append step outputs; every value uses the delimiter form so newlines are safe."""
        if self.output_file is None:
            for name, value in values.items():
                self.log(f"output {name}: {value}")
            return
        with open(self.output_file, "a", encoding="utf-8") as f:
            for name, value in values.items():
                delimiter = f"ghadelimiter_{uuid.uuid4()}"
                f.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")

    def append_summary(self, markdown: str) -> None:
        if self.summary_file is None:
            return
        with open(self.summary_file, "a", encoding="utf-8") as f:
            f.write(markdown.rstrip("\n") + "\n\n")
