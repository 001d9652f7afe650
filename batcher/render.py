"""Text a person reads: the summary after a command. Pure functions returning strings."""

from __future__ import annotations

import shlex

from batcher.model import CODE_MEANINGS, Status
from batcher.pipeline import Report
from batcher.running import Preview, RunReport
from batcher.sending import Stopped

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
    if report.media_urls:
        lines += [
            "",
            f"Media URLs ({report.media_urls}) are checked when sending: validate "
            "does not look up their hosts or download them.",
        ]
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


def run_summary(report: RunReport, rerun: str) -> str:
    """The summary of `chert-batch run`: counts, codes, problems, deferrals, next step."""
    lines = [f"{report.source}: {report.total} rows; {report.sent_now} messages sent in this run."]
    if report.cancelled:
        lines = [f"{report.source}: nothing was sent (not confirmed)."]
    lines.append("")
    lines += _status_table(report, {Status.PENDING: "not settled yet: run again"})
    lines += _problems(report)
    for line, when in sorted(report.deferred.items()):
        lines += [
            "",
            f"Line {line} is out of capacity: its new chats are deferred until "
            f"{when:%Y-%m-%d %H:%M} UTC. Run again after that to send them.",
        ]
    lines += ["", f"Results: {report.output}", f"Journal: {report.journal}"]
    if report.stopped is not None:
        lines += ["", f"Stopped early: {_stop_advice(report.stopped)}"]
        if not report.stopped.code:
            lines.append(f"Rerun the same command to finish: {rerun}")
    elif report.by_status[Status.PENDING]:
        lines.append(f"Next: run the same command again to send what is pending: {rerun}")
    elif report.by_status[Status.INVALID] or report.by_status[Status.FAILED]:
        lines.append("Next: fix the invalid or failed rows in the sheet, then run again.")
    return "\n".join(lines)


def _stop_advice(stopped: Stopped) -> str:
    if stopped.code == 2004:
        return (
            f"Chert refused the credentials (2004: {stopped.reason}). Check "
            "CHERT_SIGNING_SECRET, and --auth / --tenant for HMAC. Nothing else was sent."
        )
    if stopped.code == 2013:
        return (
            f"Chert refused the request time (2013: {stopped.reason}). Check this machine's "
            "clock: HMAC signatures must be within 5 minutes of Chert's."
        )
    return stopped.reason


def confirmation(preview: Preview, target: str) -> str:
    """What `run` asks before sending."""
    lines = [
        f"About to send {preview.requests} messages ({preview.first_touches} to new chats) "
        f"to {target}, from {len(preview.by_line)} line(s):"
    ]
    lines += [f"  {line:<18} {count:>7}" for line, count in sorted(preview.by_line.items())]
    if preview.already_sent:
        lines.append(f"({preview.already_sent} already sent by an earlier run: skipped.)")
    return "\n".join(lines)
