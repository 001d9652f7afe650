"""Text a person reads: the summary after a command. Pure functions returning strings.

Functions that lay out prose take the terminal's `width` (0: do not wrap, as for a
pipe or a file); the CLI measures it.
"""

from __future__ import annotations

import shlex
import textwrap
from collections.abc import Sequence
from datetime import datetime

from batcher.lineplan import LinePlan, Pace, duration
from batcher.model import Status
from batcher.pipeline import Changed, Report, SheetRead
from batcher.preview import Shown
from batcher.running import Preview, RunReport
from batcher.senderlines import Barred
from batcher.sending import Stopped

FIRST_PROBLEMS = 10

_WHAT_TO_DO: dict[Status, str] = {
    Status.SENT: "sent; ids are in the results",
    Status.PENDING: "not sent yet",
    Status.INVALID: "refused before sending: fix the row, then run again",
    Status.FAILED: "refused by Chert: fix the row or the account, then run again",
    Status.DUPLICATE: "repeats an earlier row; not sent",
    Status.SKIPPED: "hidden in the sheet or contacted recently; not sent",
    Status.SUPPRESSED: "opted out or on a suppression list; not sent",
}


def plural(count: int, noun: str, many: str = "") -> str:
    """'1 row', '2 rows', '0 rows'; `many` for a noun whose plural is not noun + 's'."""
    return f"{count} {noun if count == 1 else many or noun + 's'}"


def validate_summary(report: Report, *, run_options: Sequence[str] = (), width: int = 0) -> str:
    """The summary of `chert-batch validate`: counts, codes, first problems, next step.

    `run_options` are the options `run` needs to send exactly what was checked.
    """
    pending_note = {Status.PENDING: "ready to send"}
    lines = [f"{report.source}: {plural(report.total, 'row')} checked. Nothing was sent."]
    lines += [*_read_as(report), ""]
    lines += _status_table(report, pending_note)
    if report.lines:
        lines += ["", "Per line (if Chert refuses nothing):", *line_plan(report.lines, report.pace)]
    lines += _problems(report, width)
    lines += _changed(report.changed, report.resend_changed)
    lines += preview_lines(report.preview, width)
    if report.media_urls:
        lines += [
            "",
            f"Media URLs ({report.media_urls}) are checked when sending: validate "
            "does not look up their hosts or download them.",
        ]
    lines += ["", f"Results: {report.output}"]
    lines += _journal_read(report)
    if report.by_status[Status.PENDING]:
        command = shlex.join(["chert-batch", "run", str(report.source), *run_options])
        verb = "fix the invalid rows, or send the others now" if report.problems else "send"
        lines.append(f"Next: {verb} with: {command}")
    return "\n".join(lines)


def preview_lines(shown: Sequence[Shown], width: int = 0) -> list[str]:
    """The first messages to send as recipients will see them (--preview N of them)."""
    if not shown:
        return []
    first = "the first message" if len(shown) == 1 else f"the first {len(shown)} messages"
    heading = f"Preview: {first} to send, as recipients will see them (--preview N for more):"
    return ["", heading] + [wrapped(line.describe(), width) for line in shown]


def _read_as(report: Report) -> list[str]:
    """Which encoding a CSV file was read in, and what of the sheet was hidden.

    A person who knows better can tell at once.
    """
    lines = [f"Read as {report.encoding} text."] if report.encoding else []
    return lines + sheet_notes(report.sheet)


def sheet_notes(sheet: SheetRead) -> list[str]:
    """What was hidden in the sheet read, and what chert-batch did about it."""
    lines = []
    if sheet.passed_over:
        hidden = ", ".join(repr(name) for name in sheet.passed_over)
        lines.append(
            f"Sheet {sheet.name!r}: the first visible one. Hidden sheets are not read "
            f"unless --sheet names one: {hidden}."
        )
    if sheet.hidden:
        lines.append(f"Sheet {sheet.name!r} is hidden in the workbook: read as --sheet asks.")
    if sheet.hidden_rows and sheet.include_hidden:
        lines.append(
            f"Rows hidden in the sheet: {sheet.hidden_rows}, sent like the others "
            "(--include-hidden)."
        )
    elif sheet.hidden_rows:
        lines.append(
            f"Rows hidden in the sheet (by hand or by a filter): {sheet.hidden_rows}, "
            "skipped. --include-hidden sends them."
        )
    if sheet.hidden_fields:
        lines.append(
            f"Hidden columns read as usual: {', '.join(sheet.hidden_fields)}. What they "
            "hold is sent: unhide them to see it."
        )
    return lines


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


_ORDER = (
    Status.SENT,
    Status.PENDING,
    Status.FAILED,
    Status.INVALID,
    Status.DUPLICATE,
    Status.SKIPPED,
    Status.SUPPRESSED,
)


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


def _problems(report: Report, width: int) -> list[str]:
    if not report.problems:
        return []
    shown = report.problems[:FIRST_PROBLEMS]
    heading = (
        f"First problems ({len(shown)} of {len(report.problems)}; all are in the results):"
        if len(shown) < len(report.problems)
        else "Problems:"
    )
    return ["", heading] + [wrapped(problem.describe(), width) for problem in shown]


def wrapped(text: str, width: int, indent: str = "  ", hanging: str = "      ") -> str:
    """`text` indented and wrapped at `width`, later lines hanging deeper (0: one line)."""
    if width <= len(hanging) + 20:  # no terminal, or one too narrow to wrap usefully
        return indent + text
    # Words are never broken, nor at hyphens: a number or value stays whole.
    return textwrap.fill(
        text,
        width,
        initial_indent=indent,
        subsequent_indent=hanging,
        break_long_words=False,
        break_on_hyphens=False,
    )


def run_summary(report: RunReport, rerun: str, *, width: int = 0) -> str:
    """The summary of `chert-batch run`: counts, codes, problems, deferrals, next step.

    Rows are counted by status; messages (API requests: a split group row makes two),
    as the progress bar counts them.
    """
    sent = plural(report.sent_now, "message")
    lines = [f"{report.source}: {plural(report.total, 'row')}; {sent} sent in this run."]
    if report.sent_earlier:
        lines.append(
            f"{plural(report.sent_earlier, 'message')} had been sent earlier, from another "
            "sheet or journal (the send history says so, or Chert answered with the "
            "original): not sent again; their ids are in the results."
        )
    if report.cancelled:
        lines = [f"{report.source}: nothing was sent (not confirmed)."]
    lines += [*_read_as(report), ""]
    lines += _status_table(report, {Status.PENDING: "not settled yet: run again"})
    lines += _problems(report, width)
    lines += _changed(report.changed, report.resend_changed)
    lines += _elsewhere(report)
    lines += _barred(report)
    lines += _limit_sent(report)
    lines += _outside(report)
    lines += _pulled(report)
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
    elif report.by_status[Status.PENDING] and not report.limit_held:
        lines.append(f"Next: run the same command again to send what is pending: {rerun}")
    elif report.by_status[Status.INVALID] or report.by_status[Status.FAILED] > report.reused_keys:
        lines.append("Next: fix the invalid or failed rows in the sheet, then run again.")
    if report.reused_keys:
        rows = plural(report.reused_keys, "failed row")
        lines.append(
            f"Nothing to fix in {rows} whose key Chert already had with other content: "
            "each was sent earlier, from another sheet or journal (see its error_message)."
        )
    return "\n".join(lines)


def _pulled(report: RunReport) -> list[str]:
    """New opt-outs the run pulled from the event log (their rows end suppressed)."""
    if not report.pulled:
        return []
    return ["", f"Pulled {plural(report.pulled, 'new opt-out')} from the account's replies."]


def _outside(report: RunReport) -> list[str]:
    """Messages --window left pending, and when a rerun can send the first of them."""
    if not report.outside:
        return []
    held = plural(report.outside, "message") + (" is" if report.outside == 1 else " are")
    said = f"{held} outside --window {report.window} in their recipients' time"
    if report.window_opens is None:
        return ["", f"{said}, and can never be inside it (see their rows)."]
    return [
        "",
        f"{said}: the first can go at {report.window_opens:%Y-%m-%d %H:%M} UTC. Run again "
        "after that (or with --wait) to send them.",
    ]


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


def waiting(lines: dict[str, float], outside: dict[str, tuple[float, str]] | None = None) -> str:
    """What a `run --wait` waits for: "line +1415...: next first touch at 14:20".

    Chats outside --window: the one whose window opens first, and how many more wait.
    """
    said = [
        f"line {line}: next first touch at {datetime.fromtimestamp(at).strftime('%H:%M')}"
        for line, at in sorted(lines.items(), key=lambda item: item[1])
    ]
    if outside:
        first = min(outside.values())[1]
        more = len(outside) - 1
        said.append(first + (f" (and {plural(more, 'more chat')})" if more else ""))
    return "; ".join(said)


def confirmation(preview: Preview, target: str, rate: float) -> str:
    """What `run` asks before sending: what goes where, what does not, and how long."""
    lines = [
        f"About to send {plural(preview.requests, 'message')} for "
        f"{plural(preview.rows, 'row')} to {target}, "
        f"{preview.first_touches} of them to new chats, "
        f"from {plural(len(preview.lines), 'line')}:"
    ]
    lines += line_plan(preview.lines, preview.pace)
    lines += _changed(list(preview.changed), preview.resend_changed, asking=True)
    if preview.elsewhere:
        lines.append(
            f"Left to another chert-batch run that is sending them right now: "
            f"{plural(preview.elsewhere, 'row')}."
        )
    lines += _not_sent(preview)
    if preview.limit is not None:
        lines.append(
            f"--limit {preview.limit}: this run sends {preview.rows} of the "
            f"{plural(preview.limit_of, 'row')} to send (a chat's rows go together); the rest "
            "stay pending."
        )
    lines += preview_lines(preview.messages)
    lines.append(_how_long(preview.requests, rate))
    lines += _night(preview)
    return "\n".join(lines)


def _night(preview: Preview) -> list[str]:
    """Without --window, when it is night for some recipients: how many, and the option."""
    night = preview.night()
    if not night:
        return []
    return [
        f"It is night now (21:00-08:00 their time) for {night} of the "
        f"{plural(len(preview.recipients), 'recipient')}. --window 09:00-20:00 sends to each "
        "only between those hours of their own time."
    ]


def _not_sent(preview: Preview) -> list[str]:
    counts = [
        plural(preview.invalid, "invalid row") if preview.invalid else "",
        plural(preview.duplicate, "duplicate row") if preview.duplicate else "",
        f"{plural(preview.already_sent, 'row')} already sent" if preview.already_sent else "",
        f"{plural(preview.suppressed, 'row')} to someone opted out or on a suppression list"
        if preview.suppressed
        else "",
    ]
    listed = [count for count in counts if count]
    if not listed:
        return []
    last = listed.pop()
    return [f"Not sent: {', '.join(listed)} and {last}." if listed else f"Not sent: {last}."]


def sending_seconds(requests: int, rate: float) -> float | None:
    """About how long `requests` take at `rate` per second; None without a rate limit."""
    return requests / rate if rate > 0 else None


def _how_long(requests: int, rate: float) -> str:
    seconds = sending_seconds(requests, rate)
    if seconds is None:
        return "No rate limit (--rate 0): as fast as Chert answers."
    return f"At --rate {rate:g} this takes about {duration(seconds)}, longer if Chert asks to wait."


def line_plan(lines: Sequence[LinePlan], pace: Pace) -> list[str]:
    """Each line's plan on a line of its own, then which pace the estimates assume."""
    shown = [f"  {describe_line(plan, pace)}" for plan in lines]
    if any(plan.first_touches > 1 for plan in lines):
        shown += _assumed_pace(pace)
    return shown


def describe_line(plan: LinePlan, pace: Pace) -> str:
    """'line +1415...: 65 new chats, 2 follow-ups; about 2 days 0 h 40 min at 30 a day, ...'."""
    who = f"line {plan.line}" if plan.line else "chats named by chat_id"
    counts = f"{_some(plan.first_touches, 'new chat')}, {_some(plan.follow_ups, 'follow-up')}"
    if not plan.first_touches:
        return f"{who}: {counts}"
    if plan.estimate_seconds <= 0:
        return f"{who}: {counts}; right away"
    apart = f"{_span(pace.gap)} apart" if pace.gap else "with no gap"
    return (
        f"{who}: {counts}; about {duration(plan.estimate_seconds)} at {pace.daily} a day, {apart}"
    )


def _some(count: int, noun: str) -> str:
    return f"no {noun}s" if count == 0 else plural(count, noun)


def _span(seconds: float) -> str:
    """A pace as given, unrounded: '10 min', '1 h', '90 s', '0.25 s'."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds / 3600:g} h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds / 60:g} min"
    return f"{seconds:g} s"


def _assumed_pace(pace: Pace) -> list[str]:
    """Which of Chert's documented figures the estimates assume, and how to give yours."""
    gap, daily = f"{_span(pace.gap)} apart", f"{pace.daily} new chats a day"
    if not pace.gap_given and not pace.daily_given:
        return [
            f"  (Chert's documented pace for a line: {daily}, {gap}; "
            "--line-daily and --line-gap set yours.)"
        ]
    if not pace.gap_given:
        return [f"  (Chert's documented gap for a line: {gap}; --line-gap sets yours.)"]
    if not pace.daily_given:
        return [f"  (Chert's documented cap for a line: {daily}; --line-daily sets yours.)"]
    return []


def _barred(report: RunReport) -> list[str]:
    """Lines nothing was sent from, as the account's list of lines says, and what to do."""
    lines = []
    for line, why in sorted(report.barred.items()):
        count = report.rows_from(line)
        rows, stay = plural(count, "row"), "stays" if count == 1 else "stay"
        if why is Barred.UNKNOWN:
            said = (
                f"Line {line} is not one of the account's lines (2006): its {rows} failed, "
                "and nothing was sent from it. Check --from or the From column."
            )
        else:
            said = (
                f"Line {line} is not active in the account: its {rows} {stay} pending, and "
                "nothing was sent from it. Activate it (or send them from another line), "
                "then run again."
            )
        lines += ["", said]
    return lines


def _limit_sent(report: RunReport) -> list[str]:
    """What --limit let go, and how to send the rest."""
    if report.limit is None:
        return []
    of = len(report.limit_rows) + len(report.limit_held)
    rest = "; rerun without --limit to send the rest" if report.limit_held else ""
    return ["", f"--limit {report.limit}: {report.limit_sent} of {plural(of, 'row')} sent{rest}."]


def _elsewhere(report: RunReport) -> list[str]:
    """Rows left to other runs that were sending them, run by run."""
    by_run: dict[str, list[int]] = {}
    for row, holder in sorted(report.elsewhere.items()):
        by_run.setdefault(holder.describe(), []).append(row)
    lines = []
    for run, rows in by_run.items():
        shown = ", ".join(str(row) for row in rows[:FIRST_PROBLEMS])
        more = f" and {len(rows) - FIRST_PROBLEMS} more" if len(rows) > FIRST_PROBLEMS else ""
        count = plural(len(rows), "row") + (" is" if len(rows) == 1 else " are")
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
    rows = plural(len(changed), "row") + (" was" if len(changed) == 1 else " were")
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
