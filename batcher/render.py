"""Text a person reads: the summary after a command. Pure functions returning strings."""

from __future__ import annotations

import shlex

from batcher.model import CODE_MEANINGS, Status
from batcher.pipeline import Report

FIRST_PROBLEMS = 10

_WHAT_TO_DO: dict[Status, str] = {
    Status.SENT: "sent; ids are in the results",
    Status.PENDING: "not sent yet",
    Status.INVALID: "refused before sending: fix the row, then run again",
    Status.FAILED: "refused by Chert: fix the row or the account, then run again",
    Status.DUPLICATE: "repeats an earlier row; not sent",
}


def validate_summary(report: Report) -> str:
    """The summary of `chert-batch validate`: counts, codes, first problems, next step."""
    pending_note = {Status.PENDING: "ready to send"}
    lines = [f"{report.source}: {report.total} rows checked. Nothing was sent.", ""]
    lines += _status_table(report, pending_note)
    lines += _problems(report)
    lines += ["", f"Results: {report.output}"]
    if report.by_status[Status.PENDING]:
        command = f"chert-batch run {shlex.quote(str(report.source))}"
        verb = "fix the invalid rows, or send the others now" if report.problems else "send"
        lines.append(f"Next: {verb} with: {command}")
    return "\n".join(lines)


_ORDER = (Status.SENT, Status.PENDING, Status.FAILED, Status.INVALID, Status.DUPLICATE)


def _status_table(report: Report, notes: dict[Status, str]) -> list[str]:
    lines = [f"  {'status':<10} {'rows':>7}"]
    for status in _ORDER:
        count = report.by_status[status]
        if count:
            meaning = notes.get(status, _WHAT_TO_DO[status])
            lines.append(f"  {status:<10} {count:>7}  {meaning}")
    if report.by_code:
        lines += ["", f"  {'code':<10} {'rows':>7}  meaning"]
        for code, count in sorted(report.by_code.items()):
            lines.append(f"  {code:<10} {count:>7}  {CODE_MEANINGS.get(code, '')}")
    return lines


def _problems(report: Report) -> list[str]:
    if not report.problems:
        return []
    shown = report.problems[:FIRST_PROBLEMS]
    heading = (
        f"First problems ({len(shown)} of {len(report.problems)}; all are in the results):"
        if len(shown) < len(report.problems)
        else "Problems:"
    )
    return ["", heading] + [f"  {problem.describe()}" for problem in shown]
