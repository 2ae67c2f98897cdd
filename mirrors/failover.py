"""The one failover: an action tried against each mirror of a chain in turn, moving on only when
the mirror is to blame (refused, DNS, reset, timeout, HTTP 5xx, a file that fails its hash
there). Any other failure (no such version, a conflict, a full disk) stops at once: another
mirror would not fix it; a mirror that answers with a page that is not an index (a captive
portal) is to blame too, which the caller finds out. Used by pip/uv installs
(mirrors/install.py), the conda layer (env/conda.py, env/conda_exe.py) and weight downloads
(env/weights.py): all say the same.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

Notify = Callable[[str], None]  # a sentence for people: a mirror failed, switching to the next

# How pip, uv (reqwest), urllib3, huggingface_hub, conda, mamba and micromamba (libcurl) say that
# the mirror, not the request, failed.
NETWORK = re.compile(
    r"connection refused|failed to establish a new connection|name or service not known"
    r"|failed to connect|couldn't connect|newconnectionerror|maxretryerror|max retries exceeded"
    r"|temporary failure in name resolution|nodename nor servname|dns error|failed to lookup"
    r"|could not resolve host|connection (?:reset|aborted|broken)|remotedisconnected"
    r"|incompleteread|timed? ?out|http error 5\d\d|status(?: code)? 5\d\d"
    r"|\b5\d\d (?:server error|bad gateway|service unavailable|gateway timeout)"
    r"|error sending request|connection closed before|proxyerror|condahttperror"
    r"|download error|multi-download failed|(?:md5|sha256|checksum|hash) mismatch"
    r"|do not match the hashes",
    re.I,
)
# Lines tools print about their own settings, which would read as failures ("connect timeout
# of 10s" in uv's -v output).
_LOG_LINE = re.compile(r"^\s*(?:DEBUG|TRACE|INFO)\s")
# pip prints "ERROR: ..."; uv prints "error: ...", a cross-mark line, then "Caused by: ...".
_ERROR_STARTS = ("error", "\N{MULTIPLICATION SIGN}", "caused by")


@dataclass(frozen=True)
class Attempt:
    """One mirror's try."""

    mirror: str
    ok: bool
    seconds: float
    reason: str | None = None  # why it failed, for people
    mirror_fault: bool = False  # the mirror is to blame: worth trying the next one
    fetched: tuple[str, ...] = ()  # file URLs fetched during the attempt
    options: tuple[str, ...] = ()  # what it ran with (index options), when that says anything
    package: str | None = None  # the package or file that could not be fetched, when known


def diagnostics(output: str) -> str:
    """A tool's output without its log lines about settings."""
    return "\n".join(ln for ln in output.splitlines() if not _LOG_LINE.match(ln))


def mirror_fault(output: str) -> bool:
    return bool(NETWORK.search(diagnostics(output)))


def failing_line(output: str) -> str:
    """The one line of a tool's output that says why it failed: a network line first, else the
    last error line, else the last line."""
    lines = [ln.strip() for ln in diagnostics(output).splitlines() if ln.strip()]
    network = [ln for ln in lines if NETWORK.search(ln)]
    errors = [ln for ln in lines if ln.lower().startswith(_ERROR_STARTS)]
    chosen = (network or errors or lines or ["no output"])[-1]
    chosen = re.sub(r"^[^\w\[(]+", "", chosen)  # pip/uv draw boxes and arrows before the text
    return chosen if len(chosen) <= 300 else chosen[:297] + "..."


def run(
    chain: Sequence[str], attempt: Callable[[str], Attempt], kind: str, notify: Notify | None = None
) -> tuple[Attempt, ...]:
    """`attempt(mirror)` along `chain` until one succeeds or fails for a reason that is not the
    mirror's. Returns every attempt, the last one deciding."""
    done: list[Attempt] = []
    for index, mirror in enumerate(chain):
        done.append(attempt(mirror))
        last = done[-1]
        if last.ok or not last.mirror_fault:
            break
        if notify is not None and index + 1 < len(chain):
            notify(f"{last.reason}; switching {kind} to {chain[index + 1]}")
    return tuple(done)


def left_out(kind: str, mirror: str, why: str) -> str:
    """A mirror set aside before any attempt (the probe found it not an index)."""
    return f"{mirror} left out of the {kind} failover: the probe says {why}"


def describe(
    kind: str,
    attempts: Sequence[Attempt],
    done: str = "installed",
    skipped: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """One line per mirror left out, one per attempt and one per switch, in the words every
    room uses."""
    lines = [left_out(kind, mirror, why) for mirror, why in skipped]
    for a in attempts:
        if a.ok:
            lines.append(f"{kind} via {a.mirror}: {done} in {a.seconds:.1f} s")
            continue
        lost = f"; {len(a.fetched)} file(s) fetched before it, discarded" if a.fetched else ""
        lines.append(f"{kind} via {a.mirror}: failed after {a.seconds:.1f} s: {a.reason}{lost}")
    for before, after in itertools.pairwise(attempts):
        lines.append(f"switched {kind} from {before.mirror} to {after.mirror}")
    return lines
