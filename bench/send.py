"""Benchmark `chert-batch run`: sending throughput, rate-limiter accuracy, a settled rerun.

One sandbox (`python -m batcher sandbox`, no limits, no faults) serves the whole bench as
its own process; every command measured is a subprocess, and sending is timed by the
sandbox's arrival times (`/_sandbox/requests`, reset before each measurement so every
command does the same fresh work). Rates are (n - 1) / (last arrival - first arrival).

(a) throughput: `chert-batch run --rate 0 --concurrency C` on --rows direct messages, for
    each C of --concurrency (8 and 16), against two bare httpx + anyio loops of C workers
    posting the same planned requests: one AsyncClient whose pool holds C connections (the
    obvious way), and one single-connection AsyncClient per worker (what run does). Each of
    --repeat rounds runs the three in turn; the medians are compared, the range shown, as
    the machine is shared. Goals: run >= 0.9x the faster bare loop at every C, and run at
    the largest C no slower than at the smallest. The whole command's wall time is shown.
(b) rate limiter: `--rate 50` and `--rate 200` for --rate-seconds each: achieved rate and
    the busiest window [t_i, t_i + 1). Goal: >= 98 % of the rate, busiest <= rate + 1.
(c) settled rerun: --settled-rows sent once at --rate 0 (journal and results cached in
    bench/out/ by row count and port, since the journal remembers the base URL), then
    `chert-batch run` again with that journal: wall time, peak memory (os.wait4) and the
    requests the sandbox saw meanwhile (goal 0).

Files go to bench/out/ (gitignored).

Run: python bench/send.py [--rows 3000] [--concurrency 8 16] [--repeat 3] [--rate-seconds 10]
                          [--skip-rates] [--settled-rows 100000 | --skip-settled]
                          [--port 8797] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx

Figures = dict[str, Any]

OUT_DIR = Path(__file__).resolve().parent / "out"
SECRET = "bench-send-secret"  # the bench's own sandbox; never a real one
RUN_GOAL = 0.9
SCALING_GOAL = 1.0  # run at the largest --concurrency over run at the smallest
RATE_GOAL = 0.98
RATES = (50.0, 200.0)
SENDERS = tuple(f"+1555555{line:04d}" for line in range(100, 104))  # possible, as senders need
AREA_CODES = ("415", "646", "212", "312", "617", "303", "206", "718", "773", "650", "202", "305")
NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emma", "Farid", "Grace", "Hiro", "Ines", "Jamal")


def recipients(count: int) -> list[str]:
    """`count` distinct valid US numbers on 555, outside the fictional 555-01xx range."""
    import phonenumbers

    found: list[str] = []
    for area in AREA_CODES:
        for line in range(200, 10_000):
            number = f"+1{area}555{line:04d}"
            if phonenumbers.is_valid_number(phonenumbers.parse(number)):
                found.append(number)
                if len(found) == count:
                    return found
    raise ValueError(f"only {len(found)} recipients available; add area codes for {count}")


def sheet_of(rows: int) -> Path:
    """A handoff CSV of `rows` direct messages, each to its own recipient (written once)."""
    path = OUT_DIR / f"send-{rows}.csv"
    if not path.exists():
        partial = path.with_suffix(".partial")
        with partial.open("w", newline="", encoding="utf-8") as file:
            writer = csv.writer(file)
            writer.writerow(("First name", "From", "To", "Message"))
            for index, to in enumerate(recipients(rows)):
                name = NAMES[index % len(NAMES)]
                message = f"Hi {name}, your order #{index} ships today. Reply STOP to opt out."
                writer.writerow((name, SENDERS[index % len(SENDERS)], to, message))
        partial.replace(path)  # an interrupted run leaves no half-written cache
    return path


async def bare(path: Path, base_url: str, concurrency: int, per_worker: bool) -> None:
    """The baseline: the planned requests, posted by `concurrency` plain httpx workers
    sharing one pool of `concurrency` connections, or each with a client of one connection."""
    from batcher.pipeline import JobOptions, prepare

    requests = iter(list(prepare(JobOptions(path=path)).plan.requests))
    secret = os.environ["CHERT_SIGNING_SECRET"]
    headers = {"Authorization": f"Bearer {secret}", "Content-Type": "application/json"}
    each = 1 if per_worker else concurrency
    limits = httpx.Limits(max_connections=each, max_keepalive_connections=each)
    clients = [
        httpx.AsyncClient(timeout=30.0, limits=limits, trust_env=False)
        for _ in range(concurrency if per_worker else 1)
    ]

    async def worker(http: httpx.AsyncClient) -> None:
        for request in requests:  # one shared iterator: each request is taken once
            body = json.dumps(request.body(), separators=(",", ":"), ensure_ascii=False)
            await http.post(base_url + request.path(), content=body.encode(), headers=headers)

    async with contextlib.AsyncExitStack() as stack:
        for http in clients:
            await stack.enter_async_context(http)
        async with anyio.create_task_group() as group:
            for index in range(concurrency):
                group.start_soon(worker, clients[index % len(clients)])


@dataclass(frozen=True)
class Run:
    """One child process: its wall time, its own CPU time (user + system) and peak RSS."""

    seconds: float
    cpu_s: float
    peak_mb: float


def measure(name: str, argv: list[str], env: dict[str, str]) -> Run:
    """Run a command; stop if it failed. os.wait4 gives this child's own ru_maxrss (KiB)."""
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = code = os.waitstatus_to_exitcode(status)  # reaped: tell Popen
        if code:
            err.seek(0)
            sys.stderr.write(f"{name} exited {code}:\n{err.read().decode(errors='replace')}\n")
            raise SystemExit(1)
    return Run(seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024)


@contextmanager
def sandbox(port: int, env: dict[str, str]) -> Iterator[httpx.Client]:
    """`python -m batcher sandbox` as its own process, stopped by SIGINT; a client to it."""
    log_path = OUT_DIR / "sandbox.log"
    argv = [sys.executable, "-m", "batcher", "sandbox", "--port", str(port)]
    with log_path.open("wb") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            deadline = time.monotonic() + 15
            while proc.poll() is None and time.monotonic() < deadline:
                try:  # it binds before it announces: the line proves the port is its own
                    if "listening on" in log_path.read_text(errors="replace"):
                        client.get("/_sandbox/stats").raise_for_status()
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
            else:
                log_tail = log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(f"the sandbox did not start on port {port}:\n{log_tail}")
            yield client
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def rate_of(times: list[float]) -> float:
    """Requests per second between the first and the last arrival."""
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any window [t_i, t_i + 1) (times sorted)."""
    most, end = 0, 0
    for start, t in enumerate(times):
        while end < len(times) and times[end] < t + 1:
            end += 1
        most = max(most, end - start)
    return most


@dataclass(frozen=True)
class Sent:
    """What the sandbox saw of one command: sorted arrival times, and whether all went well."""

    times: list[float]
    complete: bool  # exactly the expected requests, all answered 2xx
    run: Run


def sent(box: httpx.Client, name: str, argv: list[str], env: dict[str, str], rows: int) -> Sent:
    """Reset the sandbox, run a command that sends `rows` requests, read what arrived.

    Each command gets an empty per-user home: the send history of the previous one
    would otherwise hold every key, and rightly send nothing. Every request it sends is
    recorded in that history, so (a) measures the history's cost too.
    """
    box.post("/_sandbox/reset")
    with tempfile.TemporaryDirectory(prefix="chert-home-") as home:
        run = measure(name, argv, {**env, "CHERT_BATCH_HOME": home})
    logged: list[dict[str, Any]] = box.get("/_sandbox/requests", timeout=60).json()["requests"]
    # Sends are POSTs: run's reads around sending (the account's lines, the opt-out pull
    # from the event log) are no sends.
    logged = [r for r in logged if r["method"] == "POST"]
    complete = len(logged) == rows and all(200 <= r["status"] < 300 for r in logged)
    return Sent(sorted(float(r["t"]) for r in logged), complete, run)


def run_argv(sheet: Path, tag: str, *options: str, fresh: bool = True) -> list[str]:
    """`chert-batch run SHEET --yes` with --journal and --out in bench/out named by `tag`."""
    journal, out = OUT_DIR / f"{tag}.journal.sqlite", OUT_DIR / f"{tag}.results.csv"
    if fresh:
        for path in (out, journal, Path(f"{journal}-wal"), Path(f"{journal}-shm")):
            path.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "batcher", "run", str(sheet), "--yes", *options]
    return [*argv, "--journal", str(journal), "--out", str(out)]


def median_rps(rounds: list[Sent]) -> float:
    """The median rate of the rounds: not the best, which flatters whoever was least disturbed."""
    return statistics.median(rate_of(s.times) for s in rounds)


def throughput(box: httpx.Client, env: dict[str, str], rows: int, c: int, repeat: int) -> Figures:
    """(a) at one concurrency: the same requests from two bare httpx loops and from
    `chert-batch run`, in turn, `repeat` rounds."""
    sheet = sheet_of(rows)
    bare_argv = [sys.executable, __file__, "--bare-child", str(sheet), "--concurrency", str(c)]
    rounds: dict[str, list[Sent]] = {"bare": [], "bare_per_worker": [], "run": []}
    for _ in range(repeat):
        rounds["bare"].append(sent(box, "bare httpx", bare_argv, env, rows))
        per_worker = [*bare_argv, "--bare-per-worker"]
        rounds["bare_per_worker"].append(sent(box, "bare per worker", per_worker, env, rows))
        argv = run_argv(sheet, "throughput", "--rate", "0", "--concurrency", str(c))  # afresh
        rounds["run"].append(sent(box, "chert-batch run", argv, env, rows))
    medians = {name: median_rps(each) for name, each in rounds.items()}
    best_bare = max(medians["bare"], medians["bare_per_worker"])
    complete = all(s.complete for each in rounds.values() for s in each)
    return {
        "rows": rows,
        "concurrency": c,
        "rounds": repeat,
        **{f"{name}_rps": round(rps, 1) for name, rps in medians.items()},
        **{f"{name}_rps_each": [round(rate_of(s.times)) for s in rounds[name]] for name in rounds},
        "ratio": round(medians["run"] / best_bare, 2),
        "ratio_to_shared_pool": round(medians["run"] / medians["bare"], 2),
        "pass": medians["run"] / best_bare >= RUN_GOAL and complete,
        "all_sent_once_2xx": complete,
        "run_whole_s": round(statistics.median(s.run.seconds for s in rounds["run"]), 2),
        # CPU of the whole child, start-up and planning included: contention from other
        # processes on the machine stretches wall times, much less the CPU each one needs.
        **{
            f"{name}_cpu_s": round(statistics.median(s.run.cpu_s for s in rounds[name]), 2)
            for name in rounds
        },
    }


async def limiter_alone(base_url: str, rate: float, seconds: float) -> list[float]:
    """batcher.pacing.RateLimiter in use: 8 workers, each acquiring a slot then calling the
    sandbox, as the sender does; the times the slots were granted, on the client's clock."""
    from batcher.pacing import RateLimiter

    limiter = RateLimiter(rate)
    granted: list[float] = []
    headers = {"Authorization": f"Bearer {SECRET}"}
    async with httpx.AsyncClient(timeout=30.0, trust_env=False) as http:

        async def worker() -> None:
            while len(granted) < rate * seconds:
                await limiter.acquire()
                granted.append(time.perf_counter())
                await http.get(f"{base_url}/phone-numbers", headers=headers)

        async with anyio.create_task_group() as group:
            for _ in range(8):
                group.start_soon(worker)
    return sorted(granted)


def pacing(box: httpx.Client, env: dict[str, str], rate: float, seconds: float) -> Figures:
    """(b): `chert-batch run --rate R` for about `seconds`, as the server saw it, and the
    limiter alone on the client's clock (the server's arrival times add its own jitter)."""
    rows = max(2, round(rate * seconds))
    argv = run_argv(sheet_of(rows), f"rate-{rate:g}", "--rate", f"{rate:g}")
    result = sent(box, f"run --rate {rate:g}", argv, env, rows)
    achieved, worst = rate_of(result.times), busiest_second(result.times)
    client = anyio.run(limiter_alone, env["CHERT_BASE_URL"], rate, seconds)
    return {
        "rate": rate,
        "rows": rows,
        "achieved": round(achieved, 2),
        "percent": round(100 * achieved / rate, 1),
        "worst_window": worst,
        "client_achieved": round(rate_of(client), 1),
        "client_worst_window": busiest_second(client),
        "pass": achieved >= RATE_GOAL * rate and worst <= rate + 1 and result.complete,
        "all_sent_once_2xx": result.complete,
    }


def settled(box: httpx.Client, env: dict[str, str], rows: int, c: int, port: int) -> Figures:
    """(c): send `rows` once (cached), then time a rerun that must send nothing."""
    sheet, tag = sheet_of(rows), f"settled-{rows}-port{port}"
    done = OUT_DIR / f"{tag}.done"
    first_s = None
    if not done.exists():
        print(f"sending {rows:,} rows once, for (c) and later runs...", file=sys.stderr)
        first = run_argv(sheet, tag, "--rate", "0", "--concurrency", str(c))
        result = sent(box, "first send", first, env, rows)
        if not result.complete:
            raise SystemExit(f"the first send of {rows:,} rows was incomplete; run again")
        first_s = round(result.run.seconds, 1)
        done.touch()
    before = box.get("/_sandbox/stats").json()["requests"]
    # --rate 0 changes nothing when all is settled, but a stale cache (keys derived anew)
    # then costs minutes, not hours at the default 10/s.
    rerun = measure("settled rerun", run_argv(sheet, tag, "--rate", "0", fresh=False), env)
    requests = box.get("/_sandbox/stats").json()["requests"] - before
    return {
        "rows": rows,
        "rerun_s": round(rerun.seconds, 2),
        "rerun_peak_mb": round(rerun.peak_mb, 1),
        "rerun_requests": requests,
        "pass": requests == 0,
        "first_send_s": first_s,  # None: the cached journal was used
    }


def scaling(parts: list[Figures]) -> Figures:
    """run's median at the largest concurrency over its median at the smallest."""
    low, high = parts[0], parts[-1]
    ratio = high["run_rps"] / low["run_rps"]
    return {
        "from": low["concurrency"],
        "to": high["concurrency"],
        "ratio": round(ratio, 2),
        "pass": ratio >= SCALING_GOAL,
    }


def spread(each: list[int]) -> str:
    """The range of the rounds, as `min-max`."""
    return f"{min(each)}-{max(each)}"


def render(figures: Figures) -> None:
    """Print the figures side by side."""
    parts = figures["throughput"]
    first = parts[0]
    print(
        f"(a) throughput, {first['rows']:,} rows: median req/s of {first['rounds']} rounds "
        "[range]; each round runs the three in turn"
    )
    print(
        f"    {'conc.':>5}  {'bare, 1 pool':>18}  {'bare, 1 conn/worker':>19}  "
        f"{'chert-batch run':>18}  {'run/best bare':>13}  goal >= {RUN_GOAL}x"
    )
    for a in parts:
        cells = [
            f"{a[f'{name}_rps']:>5.0f} [{spread(a[f'{name}_rps_each']):>9}]"
            for name in ("bare", "bare_per_worker", "run")
        ]
        print(
            f"    {a['concurrency']:>5}  {cells[0]:>18}  {cells[1]:>19}  {cells[2]:>18}  "
            f"{a['ratio']:>12.2f}x  {'PASS' if a['pass'] else 'FAIL'}"
        )
    print("    CPU seconds of each whole process (start-up and planning included), medians:")
    for a in parts:
        cells = [f"{a[f'{name}_cpu_s']:>5.2f} s" for name in ("bare", "bare_per_worker", "run")]
        print(
            f"    {a['concurrency']:>5}  {cells[0]:>18}  {cells[1]:>19}  {cells[2]:>18}  "
            f"   run's whole command: {a['run_whole_s']:.1f} s"
        )
    if len(parts) > 1:
        k = figures["scaling"]
        print(
            f"    run at {k['to']} over run at {k['from']}: {k['ratio']:.2f}x   goal >= "
            f"{SCALING_GOAL}x: {'PASS' if k['pass'] else 'FAIL'}"
        )
    if figures["rates"]:
        print("(b) rate limiter")
    for b in figures["rates"]:
        print(
            f"    --rate {b['rate']:<4g} achieved {b['achieved']:.1f}/s ({b['percent']} %)  "
            f"worst 1-s window {b['worst_window']}   {'PASS' if b['pass'] else 'FAIL'}"
        )
        print(
            f"      limiter alone, client clock: {b['client_achieved']:.1f}/s, worst 1-s "
            f"window {b['client_worst_window']}"
        )
    if c := figures.get("settled"):
        first = c["first_send_s"] and f"   (first send, now cached: {c['first_send_s']:.0f} s)"
        print(
            f"(c) settled rerun of {c['rows']:,} rows: {c['rerun_s']:.1f} s, "
            f"{c['rerun_requests']} requests, peak {c['rerun_peak_mb']:.0f} MB   "
            f"{'PASS' if c['pass'] else 'FAIL'}{first or ''}"
        )
    if not all(part["all_sent_once_2xx"] for part in (*parts, *figures["rates"])):
        print("Some commands did not send exactly the expected requests, all 2xx: see --json.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3000, help="(a) rows (default 3000)")
    parser.add_argument(
        "--concurrency", type=int, nargs="+", default=[8, 16], help="(a) in flight (8 16)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="(a) rounds, median (default 3)")
    parser.add_argument("--rate-seconds", type=float, default=10.0, help="(b) each (default 10)")
    parser.add_argument("--skip-rates", action="store_true", help="skip (b)")
    parser.add_argument("--settled-rows", type=int, default=100_000, help="(c) rows (100000)")
    parser.add_argument("--skip-settled", action="store_true", help="skip (c)")
    parser.add_argument("--port", type=int, default=8797, help="sandbox port (default 8797)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--bare-child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--bare-per-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if min(args.rows, args.settled_rows) < 2 or args.repeat < 3 or args.rate_seconds <= 0:
        parser.error("rows must be at least 2, --repeat at least 3, --rate-seconds positive")
    concurrencies = sorted(set(args.concurrency))
    if not all(1 <= c <= 64 for c in concurrencies):
        parser.error("--concurrency must be 1 to 64, as chert-batch run takes")
    if args.bare_child:
        base = os.environ["CHERT_BASE_URL"]
        anyio.run(bare, args.bare_child, base, concurrencies[0], args.bare_per_worker)
        return
    base_url = f"http://127.0.0.1:{args.port}/api/v1"
    env = {**os.environ, "CHERT_SIGNING_SECRET": SECRET, "CHERT_BASE_URL": base_url}
    # Commands not given a home of their own (see sent) never touch the user's.
    home = tempfile.TemporaryDirectory(prefix="chert-home-")
    env["CHERT_BATCH_HOME"] = home.name
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    with sandbox(args.port, env) as box:
        parts = [throughput(box, env, args.rows, c, args.repeat) for c in concurrencies]
        figures: Figures = {"throughput": parts, "scaling": scaling(parts)}
        rates = () if args.skip_rates else RATES
        figures["rates"] = [pacing(box, env, rate, args.rate_seconds) for rate in rates]
        if not args.skip_settled:
            c = concurrencies[0]
            figures["settled"] = settled(box, env, args.settled_rows, c, args.port)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        render(figures)


if __name__ == "__main__":
    main()
