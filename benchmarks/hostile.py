"""The hostile pass (issue 17) as a script: a few hundred hostile requests at a real server, and
the counts that say whether it held.

    python benchmarks/hostile.py [--url URL [--token T]] [--cases-scale 1] [--keep] [--json FILE]

Without --url it builds the demo twin in a temp home and starts `invoke serve --model demo
--device cpu` on loopback (the default queue size and upload cap), and a second one with a
token for the token's cases; with --url it attacks a server already running, with --token when
that one has a token (the token's cases then run against it), and kill -9, memory and the log
are not measured. A case is a small function answering (accepted job ids, status code); the
kinds: settings, images, ids on every job route, methods on every path, cancels, bodies over the
cap, the token, foreign Host and Origin, half-sent requests, 50 event streams beside a POST, the
OpenAI videos API, a burst past the queue, and kill -9 mid-queue then a restart on the same home.
Then every accepted job must end succeeded, failed or cancelled (one deleted on purpose through
DELETE /v1/videos is not lost). Exit 1 on a 5xx, a lost job, a "Traceback" in a server's log or
a half-sent connection left open; an answer other than the case expected is listed, not fatal.

This file holds the options, the servers, the order of the phases, the report and the exit code;
hostile_core.py the target, the tally and the ways to send a request; hostile_cases.py and
hostile_images.py the cases; hostile_floods.py the phases that need time, sockets or order.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks")]  # the repo, and this script's siblings

from hostile_cases import (  # noqa: E402
    body_cases,
    header_cases,
    id_cases,
    method_cases,
    settings_cases,
    token_cases,
    video_cases,
)
from hostile_core import FINAL, Tally, Target, accepted, job, run, status, until  # noqa: E402
from hostile_floods import (  # noqa: E402
    STREAMS,
    Rss,
    burst,
    cancels,
    half_sent,
    kill_and_restart,
    settle,
    stalled_body,
    streams,
)
from hostile_images import image_cases  # noqa: E402

from tests.helpers.server import Server  # noqa: E402

SETTLE_SECONDS = 240.0


def start_servers(home: Path) -> tuple[Target, Target]:
    """The plain server and the token's, both on loopback, started side by side."""
    from i2vkit.runtime import twins

    twins.save(home / "plain" / "models" / "demo", "i2vgen-xl")
    shutil.copytree(home / "plain", home / "token")
    token = secrets.token_hex(16)
    plain = Server(home / "plain").start(wait=False)
    guarded = Server(home / "token", "--token", token).start(wait=False)
    plain.wait_ready(180)
    guarded.wait_ready(180)
    return Target(plain.url, server=plain), Target(guarded.url, token, guarded)


def log(started: float, what: str) -> None:
    print(f"[{time.monotonic() - started:6.1f} s] {what}", file=sys.stderr, flush=True)


def background(t: Target, tally: Tally, scale: float,
               halves: list[tuple[int, int]]) -> list[threading.Thread]:  # fmt: skip
    """What waits 20 s on the server's clock, run beside the rest: half-sent requests, and
    bodies that stall."""

    def stall(path: str) -> None:
        name = f"a body stalled after its first bytes: {path}"
        tally.add(name, "408", ([], stalled_body(t, path)))

    threads = [threading.Thread(target=lambda: halves.append(half_sent(t, int(40 * scale))))]
    threads += [threading.Thread(target=stall, args=(p,)) for p in ("/v1/jobs", "/v1/videos")]
    for thread in threads:
        thread.start()
    return threads


def attack(t: Target, guarded: Target | None, tally: Tally, scale: float,
           started: float) -> dict[str, Any]:  # fmt: skip
    """Every phase, in an order that keeps the queue from being full when it must not be."""
    out: dict[str, Any] = {}
    ended = accepted(tally, "a job to read back", job(t))
    doomed = accepted(tally, "a job for the methods (DELETE removes it)", job(t))
    assert ended and doomed, "the server accepted no job: is it ready?"
    halves: list[tuple[int, int]] = []
    waiting = background(t, tally, scale, halves)
    until(lambda: status(t, ended) in FINAL, 120)
    log(started, "cancels")  # first: the long job then runs at once, with nothing ahead of it
    cancels(t, tally, ended)
    log(started, "images")
    run(tally, image_cases(t), workers=3)
    until(lambda: all(status(t, i) in (*FINAL, "gone") for i in (ended, doomed)), 120)
    log(started, "settings, ids, methods, headers, videos, bodies")
    run(tally, [*settings_cases(t, scale), *id_cases(t, ended), *method_cases(t, tally, doomed),
                *header_cases(t, tally, ended), *video_cases(t, ended),
                *body_cases(t)])  # fmt: skip
    if guarded is not None:
        log(started, "the token")
        token_cases(guarded, tally)
    log(started, f"{STREAMS} event streams beside a POST")
    out["post_alone_s"], out["post_beside_streams_s"] = streams(t, tally)
    log(started, "a burst past the queue")
    counts = burst(t, tally, int(8 * scale))
    out["burst_accepted"], out["burst_429"], out["burst_429_with_retry_after"] = counts
    for thread in waiting:
        thread.join()
    out["half_sent_closed"], out["half_sent_opened"] = halves[0] if halves else (0, 0)
    return out


def traceback_lines(servers: list[Server]) -> list[str]:
    lines = (s.log.read_text(errors="replace").splitlines() for s in servers if s.log.exists())
    return [line for log_lines in lines for line in log_lines if "Traceback" in line]


def table(c: dict[str, Any]) -> str:
    answers = " / ".join(str(c["answers"][k]) for k in ("2xx", "3xx", "4xx", "5xx", "none"))
    ends = " / ".join(str(c["ends"].get(k, 0)) for k in FINAL)
    rss = c["rss_start_mib"] is not None
    kill = c["unfinished_at_kill"] is not None
    rows = [
        ("cases run", c["cases"]),
        ("answers 2xx / 3xx / 4xx / 5xx / none", answers),
        ("**5xx** (must be 0)", c["answers"]["5xx"]),
        ("accepted jobs (succeeded / failed / cancelled; deleted on purpose)",
         f"{c['accepted']} ({ends}; {c['deleted']})"),
        ("**lost jobs** (accepted, then gone or never final)", c["lost"]),
        ("half-sent connections closed within 20 s / opened",
         f"{c['half_sent_closed']} / {c['half_sent_opened']}"),
        (f"POST latency alone / beside {STREAMS} event streams",
         f"{c['post_alone_s']:.2f} s / {c['post_beside_streams_s']:.2f} s"),
        ("burst past the queue: 202 / 429 (429 with Retry-After)",
         f"{c['burst_accepted']} / {c['burst_429']} ({c['burst_429_with_retry_after']})"),
        ("kill -9 mid-queue: jobs not final at the kill; all final after the restart",
         f"{c['unfinished_at_kill']}; {'no' if c['lost'] else 'yes'}" if kill else "n/a"),
        ("server RSS at start / peak (its process and workers)",
         f"{c['rss_start_mib']:.0f} MiB / {c['rss_peak_mib']:.0f} MiB" if rss else "n/a"),
        ('"Traceback" lines in the servers\' logs',
         "n/a" if c["tracebacks"] is None else c["tracebacks"]),
        ("answers other than the case expected (listed below; not fatal)", len(c["unexpected"])),
        ("run time", f"{c['seconds']:.0f} s"),
    ]  # fmt: skip
    return "\n".join(["| measure | value |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)])


def count(tally: Tally, ends: Counter[str], lost: list[str], rss: Rss | None,
          servers: list[Server]) -> dict[str, Any]:  # fmt: skip
    classes = Counter({2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}.get(code // 100, "none")
                      for code in tally.codes.elements())  # fmt: skip
    return {
        "cases": sum(tally.codes.values()),
        "answers": {k: classes[k] for k in ("2xx", "3xx", "4xx", "5xx", "none")},
        "accepted": len(tally.accepted),
        "deleted": len(tally.deleted & set(tally.accepted)),
        "ends": dict(ends),
        "lost": len(lost),
        "lost_ids": lost,
        "rss_start_mib": rss.start_mib if rss else None,
        "rss_peak_mib": rss.peak_mib if rss else None,
        "tracebacks": len(traceback_lines(servers)) if servers else None,
        "unexpected": tally.unexpected,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="attack this server instead of starting one")
    parser.add_argument("--token", help="the --url server's token (its token cases run too)")
    parser.add_argument("--cases-scale", type=float, default=1.0, help="more or fewer cases")
    parser.add_argument("--keep", action="store_true", help="keep the temp home (logs, jobs)")
    parser.add_argument("--json", type=Path, help="write the counts to this file as JSON")
    args = parser.parse_args()
    started, tally = time.monotonic(), Tally()
    home = Path(tempfile.mkdtemp(prefix="i2vkit-hostile-"))
    servers: list[Server] = []
    rss: Rss | None = None
    try:
        if args.url:
            t = Target(args.url.rstrip("/"), args.token)
            guarded = t if args.token else None
        else:
            log(started, f"starting two servers in {home}")
            t, guarded = start_servers(home)
            servers += [t.server, guarded.server]  # type: ignore[list-item]
            rss = Rss(servers[0])
            rss.start()
        out = attack(t, guarded, tally, args.cases_scale, started)
        if guarded is not t and guarded.server is not None:  # type: ignore[union-attr]
            guarded.server.stop()  # type: ignore[union-attr]  # done: its core back to the rest
        out["unfinished_at_kill"] = None
        if rss is not None:
            log(started, "kill -9 mid-queue and a restart")
            out["unfinished_at_kill"] = kill_and_restart(t, tally, rss)
            servers.append(t.server)  # type: ignore[arg-type]
        log(started, f"waiting for {len(tally.accepted)} accepted jobs to end")
        ends, lost = settle(t, tally, SETTLE_SECONDS)
        if rss is not None:
            rss.stopping.set()
        out |= count(tally, ends, lost, rss, servers)
        out["seconds"] = time.monotonic() - started
    finally:
        for server in servers:
            server.stop()
    print(table(out))
    for line in tally.unexpected:
        print(f"  unexpected: {line}")
    for job_id in lost:
        print(f"  lost: {job_id} ({tally.accepted[job_id]})")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    failed = (out["answers"]["5xx"] or lost or out["tracebacks"]
              or out["half_sent_closed"] < out["half_sent_opened"])  # fmt: skip
    for server in servers if failed else []:
        if server.log.exists():
            tail = server.log.read_text(errors="replace").splitlines()[-80:]
            print(f"\n--- {server.log} (its last 80 lines) ---", *tail, sep="\n")
    if args.keep:
        print(f"kept: {home}")
    else:
        shutil.rmtree(home, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
