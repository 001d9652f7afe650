"""Text a person reads: the summary after a command. Pure functions returning strings."""

from __future__ import annotations

import shlex

from batcher.model import Status
from batcher.pipeline import Changed, Report
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
    lines += _changed(report.changed, report.resend_changed)
    lines += ["", f"Results: {report.output}"]
    lines += _journal_read(report)
    if report.by_status[Status.PENDING]:
        command = f"chert-batch run {shlex.quote(str(report.source))}"
        verb = "fix the invalid rows, or send the others now" if report.problems else "send"
        lines.append(f"Next: {verb} with: {command}")
    return "\n".join(lines)


def _journal_read(report: Report) -> list[str]:
    """Which journal validate showed, and whether a run was using it."""
    if report.journal_read is None:
        return []
    if report.journal_busy:
        return [
            f"Journal: {report.journal_read} is in use by a run right now: what it has sent "
            "since it started is shown as planned. Validate again when it has finished."
        ]
    return [f"Journal: {report.journal_read} (what it records as sent is shown as sent)"]


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
            lines.append(f"  {code:<10} {count:>7}  {report.meaning(code)}")
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
    lines += _changed(report.changed, report.resend_changed)
    lines += _elsewhere(report)
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
    lines += _changed(list(preview.changed), preview.resend_changed, asking=True)
    if preview.elsewhere:
        lines.append(
            f"({preview.elsewhere} row(s) another chert-batch run is sending right now: "
            "left to it.)"
        )
    return "\n".join(lines)


def _elsewhere(report: RunReport) -> list[str]:
    """Rows left to other runs that were sending them, run by run."""
    by_run: dict[str, list[int]] = {}
    for row, holder in sorted(report.elsewhere.items()):
        by_run.setdefault(holder.describe(), []).append(row)
    lines = []
    for run, rows in by_run.items():
        shown = ", ".join(str(row) for row in rows[:FIRST_PROBLEMS])
        more = f" and {len(rows) - FIRST_PROBLEMS} more" if len(rows) > FIRST_PROBLEMS else ""
        count = "1 row is" if len(rows) == 1 else f"{len(rows)} rows are"
        lines += [
            "",
            f"{count} being sent by another chert-batch run right now ({run}): rows "
            f"{shown}{more}. This run left them alone; run again when it has finished.",
        ]
    return lines


def _changed(changed: list[Changed], resend: bool, *, asking: bool = False) -> list[str]:
    """Rows sent earlier and changed since: who gets a second message, or that none will."""
    if not changed:
        return []
    rows = "1 row was" if len(changed) == 1 else f"{len(changed)} rows were"
    lines = ["", f"{rows} sent earlier and changed since:"]
    for row in changed[:FIRST_PROBLEMS]:
        when = f" on {row.sent_at[:10]}" if row.sent_at else ""
        if not resend:
            then = "not sent again (--resend-changed sends the new text)"
        elif asking:
            then = f"{row.who} will get a second message"
        else:
            then = f"its new text is a second message to {row.who} (see its status)"
        lines.append(f"  row {row.row} was sent{when} and has changed since: {then}")
    if len(changed) > FIRST_PROBLEMS:
        lines.append(f"  ... and {len(changed) - FIRST_PROBLEMS} more (the results say which).")
    return lines
