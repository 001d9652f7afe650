"""The error tree: every problem chert-batch reports as a whole-run failure.

Row-level problems are not exceptions: they are `Problem` values carried by the
row (see `batcher.validation`). These exceptions stop a command; the CLI is the
one place that turns them into text and an exit code.
"""

from __future__ import annotations


class BatchError(Exception):
    """Base class: a problem that stops the command, with what to do next."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n{self.hint}" if self.hint else self.message


class InputError(BatchError):
    """The handoff file cannot be used as it is: unreadable, no header, no recipients column."""

    exit_code = 2


class NothingToSend(BatchError):
    """The handoff file has a header row but no data rows: it ran, and there is no work.

    Exit 1, not 0: a sheet exported before its rows were filled in (or the wrong sheet)
    is not a job done.
    """


class UsageError(BatchError):
    """The command was called wrong: conflicting or impossible options."""

    exit_code = 2


class OutputError(BatchError):
    """The results sheet or journal could not be written."""

    exit_code = 2


class JournalError(OutputError):
    """Writing or reading the journal failed while a run was under way (disk full, I/O).

    Every message sent so far is safe (its intent was committed first), but the run
    stops: `path` is the journal, `cause` what SQLite or the system said.
    """

    exit_code = 3

    def __init__(self, message: str, *, path: str, cause: str, hint: str = "") -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.cause = cause


class UnusableJournal(OutputError):
    """The file at the journal's path is not a journal chert-batch can trust.

    Empty, not SQLite, without chert-batch's tables, damaged, edited by hand, or left
    by a run that never closed it and separated from its write-ahead log: taking it for
    a new journal would send every request again, so it is refused with what to do.
    """


class ResultsNotWritten(OutputError):
    """`run` could not write the results sheet after sending: the journal has it all."""

    exit_code = 3


class PullFailed(BatchError):
    """Reading an account's event log failed: the API refused, or never answered.

    `code` is the API's error code (0 when there was no answer or no envelope),
    `status` the HTTP status (0 when there was no answer) and `why` what happened.
    Opt-outs found on the pages read before are kept, and the pull position stays
    where the last whole pull left it: the next pull reads again.
    """

    def __init__(
        self, message: str, *, code: int, why: str, hint: str = "", status: int = 0
    ) -> None:
        super().__init__(message, hint=hint)
        self.code = code
        self.why = why
        self.status = status
