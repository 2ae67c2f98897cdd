"""Install packages into an environment through a mirror, failing over to the next one.

Runs a real `pip install` (or `uv pip install`) against exactly one index at a time, with no
retries: when the mirror fails for a network reason (refused, DNS, reset, timeout, HTTP 5xx),
serves a file that is not the one the lockfile pins (a hash mismatch), or answers with a page
that is not an index (a captive portal: the tools then report only "no such package"), the same
install is run again against the next mirror in the plan's chain for that kind. A failure that
is none of these (no such version, a conflict) is reported at once: another mirror would not
fix it. The result says which attempt failed and why, and which file was installed from which
mirror (pip's --report, uv's request log).

The host's own index configuration is kept out: pip config files are skipped and index
variables removed from the child's environment, so nothing can add a second index.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from i2vkit import tools
from i2vkit.errors import ConfigError, InstallError
from i2vkit.mirrors import failover
from i2vkit.mirrors.catalogue import Catalogue, TorchEndpoint
from i2vkit.mirrors.choose import MirrorPlan
from i2vkit.mirrors.failover import Attempt
from i2vkit.mirrors.probe import answers_wrong, describe_error, probe_url
from i2vkit.mirrors.rewrite import mirror_of

READ_TIMEOUT_S = 15  # per socket read: a stalled mirror fails over instead of hanging

_PIP_FETCH = re.compile(r"^\s*Downloading (\S+)", re.M)
_UV_FETCH = re.compile(r"GET request for: (\S+)")
_DIST = re.compile(r"\.(?:whl|tar\.gz|zip)$")
_INDEX_VARS = ("PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_NO_INDEX")
_UV_INDEX_VARS = ("UV_INDEX", "UV_DEFAULT_INDEX", "UV_INDEX_URL", "UV_EXTRA_INDEX_URL")
# A file that is not the one the lockfile pins. uv: "Hash mismatch for `alpha==1.0`", then the
# expected and computed hashes; pip: "THESE PACKAGES DO NOT MATCH THE HASHES ...", then per
# package "alpha==1.0 from URL (from -r ...):", "Expected sha256 ...", "Got ...".
_UV_MISMATCH = re.compile(
    r"hash mismatch for `([^`]+)`(?:\s*Expected:\s*(\w+):(\w+).*?Computed:\s*\w+:(\w+))?",
    re.I | re.S,
)
_PIP_MISMATCH = re.compile(
    r"^\s+(\S+) from \S+.*\n\s*Expected (\w+) (\w+)\s*\n(?:\s*or \w+\s*\n)*\s*Got\s+(\w+)", re.M
)
# The project a tool found no version of (pip: "No matching distribution found for alpha==1.0";
# uv: "there is no version of alpha==1.0", "there are no versions of alpha").
_MISSING = re.compile(
    r"no matching distribution found for ([A-Za-z0-9][\w.-]*)|no versions? of ([A-Za-z0-9][\w.-]*)",
    re.I,
)
_INDEX_FLAGS = ("--index-url", "--extra-index-url", "-i")
_LINKS_FLAGS = ("--find-links", "-f")


@dataclass(frozen=True)
class InstallResult:
    kind: str
    tool: str
    attempts: tuple[Attempt, ...]
    files: Mapping[str, str]  # installed file name -> mirror it came from
    left_out: tuple[tuple[str, str], ...] = ()  # (mirror, why): set aside before any attempt

    @property
    def ok(self) -> bool:
        return bool(self.attempts) and self.attempts[-1].ok

    def summary(self) -> list[str]:
        lines = failover.describe(self.kind, self.attempts, skipped=self.left_out)
        return lines + [f"{name} from {mirror}" for name, mirror in sorted(self.files.items())]


def index_args(
    catalogue: Catalogue, plan: MirrorPlan, mirror: str, kind: str, pypi: str | None = None
) -> list[str]:
    """The index options that make `mirror` the only source for this step (with `pypi`, or
    the plan's PyPI mirror, for what a flat torch page does not list)."""
    endpoint = catalogue.mirror[mirror].endpoint(kind, plan.variant)
    if endpoint is None:
        raise ConfigError(f"mirror {mirror!r} offers no {kind}")
    if not isinstance(endpoint, TorchEndpoint):
        return ["--index-url", endpoint.url]
    url = endpoint.for_variant(plan.variant)
    if endpoint.layout == "simple":
        return ["--index-url", url]
    # A flat page lists only torch: its dependencies come from a PyPI mirror.
    return ["--index-url", pypi or plan.url("pypi"), "--find-links", url]


def working_pypi(catalogue: Catalogue, plan: MirrorPlan) -> str:
    """The first of the plan's PyPI chain that answers as an index: where a flat torch page's
    dependencies (and a wheelhouse's missing files) come from. The plan's first choice is not
    checked by an install before the torch step runs, and a dead or portal mirror there would
    fail every torch mirror in turn, each for the same PyPI page. The plan's pick when none
    answers (the install then says why)."""
    for name in plan.chains.get("pypi", ()):
        endpoint = catalogue.mirror[name].endpoint("pypi", plan.variant)
        if endpoint is None:
            continue
        page = probe_url(catalogue, "pypi", endpoint, plan.variant)
        if reachable(page) is None and answers_wrong(page, "pypi") is None:
            return endpoint.url
    return plan.url("pypi")


def child_env(tool: str, env: Mapping[str, str] | None = None) -> dict[str, str]:
    out = {k: v for k, v in (os.environ if env is None else env).items()}
    for name in (*_INDEX_VARS, *_UV_INDEX_VARS, "UV_FIND_LINKS"):
        out.pop(name, None)
    if tool == "pip":
        out["PIP_CONFIG_FILE"] = os.devnull  # pip then reads no config file at all
    else:
        out["UV_HTTP_RETRIES"] = "0"
    return out


def _command(tool: str, python: Path, args: list[str], report: Path) -> list[str]:
    if tool == "pip":
        return [
            sys.executable, "-m", "pip", "--python", str(python), "install",
            "--no-input", "--disable-pip-version-check", "--progress-bar", "off",
            "--retries", "0", "--timeout", str(READ_TIMEOUT_S), "--report", str(report), *args,
        ]  # fmt: skip
    return [str(tools.uv()), "pip", "install", "--python", str(python), "--no-config", "-v", *args]


def _fetched(tool: str, output: str, report: Path) -> tuple[str, ...]:
    if tool == "pip" and report.is_file():
        data = json.loads(report.read_text(encoding="utf-8"))
        return tuple(i["download_info"]["url"] for i in data.get("install", []))
    pattern = _PIP_FETCH if tool == "pip" else _UV_FETCH
    urls = [u for u in pattern.findall(output) if _DIST.search(urlsplit(u).path)]
    return tuple(dict.fromkeys(urls))


def _run(tool: str, python: Path, args: list[str], env: dict[str, str], timeout: float):
    with tempfile.TemporaryDirectory(prefix="i2vkit-install-") as tmp:
        report = Path(tmp) / "report.json"
        start = time.monotonic()
        try:
            done = subprocess.run(
                _command(tool, python, args, report), env=env, capture_output=True,
                text=True, timeout=timeout, check=False,
            )  # fmt: skip
            output, code = done.stdout + done.stderr, done.returncode
        except subprocess.TimeoutExpired as error:
            # TimeoutExpired carries bytes even under text=True
            parts = [p.decode(errors="replace") if isinstance(p, bytes) else p or "" for p in
                     (error.stdout, error.stderr)]  # fmt: skip
            output, code = "".join(parts) + "\ntimed out", -1
        return code, output, _fetched(tool, output, report), time.monotonic() - start


def install(
    python: Path,
    requirements: Sequence[str],
    catalogue: Catalogue,
    plan: MirrorPlan,
    kind: str = "pypi",
    tool: str = "pip",
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> InstallResult:
    """Install `requirements` into the environment of `python`, from the plan's mirror for
    `kind` ('pypi', or 'torch' for the torch step), failing over along the plan's chain.
    Raises InstallError (carrying the result) when no mirror could do it."""

    @functools.cache
    def companion() -> str:  # checked only once a flat torch page is tried, not before
        return working_pypi(catalogue, plan)

    def one(mirror: str) -> Attempt:
        pypi = companion() if kind == "torch" and _flat(catalogue, mirror, plan.variant) else None
        return attempt(python, requirements, index_args(catalogue, plan, mirror, kind, pypi),
                       mirror, tool, env, timeout)  # fmt: skip

    attempts = failover.run(plan.chains.get(kind, ()), one, kind)
    skipped = tuple(plan.left_out.get(kind, ()))
    last = attempts[-1] if attempts else None
    if last is None or not last.ok:
        raise InstallError(InstallResult(kind, tool, attempts, {}, skipped))
    files = {_name(u): mirror_of(u, catalogue) or last.mirror for u in last.fetched}
    return InstallResult(kind, tool, attempts, files, skipped)


def _flat(catalogue: Catalogue, mirror: str, variant: str) -> bool:
    endpoint = catalogue.mirror[mirror].endpoint("torch", variant)
    return isinstance(endpoint, TorchEndpoint) and endpoint.layout != "simple"


def attempt(
    python: Path,
    requirements: Sequence[str],
    source_args: Sequence[str],
    label: str,
    tool: str = "pip",
    env: Mapping[str, str] | None = None,
    timeout: float = 1800,
) -> Attempt:
    """One install from exactly the sources in `source_args` (a mirror's index options, or a
    local wheelhouse), named `label` in reports."""
    code, output, fetched, took = _run(
        tool, python, [*source_args, *requirements], child_env(tool, env), timeout
    )
    options = tuple(source_args)
    if code == 0:
        return Attempt(label, True, took, fetched=fetched, options=options)
    reason, fault = failover.failing_line(output), failover.mirror_fault(output)
    mismatch = hash_mismatch(failover.diagnostics(output), label)
    if mismatch is not None:
        reason, package = mismatch
        return Attempt(label, False, took, reason, True, fetched, options, package)
    if not fault:
        # pip with --retries 0 logs a refused or unresolvable index only at debug level, and
        # both tools read a captive portal's login page as an index without the package: either
        # way they say only "no such package". So such a failure is checked against the sources
        # themselves (a GET each) before it counts as the package's.
        blame = _unreachable(source_args) or _wrong_answer(source_args, output)
        if blame is not None:
            reason, fault = f"{blame}; the tool said: {reason}", True
    return Attempt(label, False, took, reason, fault, fetched, options)


def hash_mismatch(output: str, label: str) -> tuple[str, str] | None:
    """(reason, package) when pip or uv refused a file for not matching the lockfile's hash."""
    found = [(m[1], m[2], m[3], m[4]) for m in _UV_MISMATCH.finditer(output)]
    found += [(m[1], m[2], m[3], m[4]) for m in _PIP_MISMATCH.finditer(output)]
    if not found:
        return None
    package, algorithm, pinned, got = found[0]
    reason = f"hash mismatch: {package} from {label}"
    if pinned and got:
        reason += f" has {algorithm} {got[:16]}..., the lockfile pins {algorithm} {pinned[:16]}..."
    others = list(dict.fromkeys(f[0] for f in found[1:] if f[0] != package))
    return reason + (f" (also {', '.join(others)})" if others else ""), package


def _sources(args: Sequence[str], flags: Sequence[str]) -> list[str]:
    """The http(s) URLs given with `flags` among install options."""
    pairs = itertools.pairwise(args)
    return [value for flag, value in pairs if flag in flags and value.startswith("http")]


def _source_urls(args: Sequence[str]) -> list[str]:
    """The http(s) index and find-links URLs among install options."""
    return _sources(args, (*_INDEX_FLAGS, *_LINKS_FLAGS))


def _unreachable(source_args: Sequence[str]) -> str | None:
    for url in _source_urls(source_args):
        why = reachable(url)
        if why:
            return f"{url} is unreachable ({why})"
    return None


def _wrong_answer(source_args: Sequence[str], output: str) -> str | None:
    """Which source answered with a page that is not an index (a portal's login page), if any:
    the find-links pages, then each index's page for the project the tool found nothing of."""
    found = _MISSING.search(failover.diagnostics(output))
    project = re.sub(r"[-_.]+", "-", (found[1] or found[2]).rstrip(".")).lower() if found else ""
    pages = [(url, "torch") for url in _sources(source_args, _LINKS_FLAGS)]  # a flat wheel page
    if project:
        pages += [(f"{url.rstrip('/')}/{project}/", "pypi")
                  for url in _sources(source_args, _INDEX_FLAGS)]  # fmt: skip
    for page, kind in pages:
        why = answers_wrong(page, kind)
        if why:
            return f"{page} is {why} (a captive portal or login page?)"
    return None


def reachable(url: str, timeout: float = 5.0) -> str | None:
    """Why `url` cannot be fetched for a network reason (refused, DNS, timeout, reset, HTTP 5xx),
    or None when the server answers (a 404 is an answer: the mirror is up)."""
    try:
        with httpx.Client(timeout=timeout, follow_redirects=True) as client:
            status = client.get(url).status_code
    except (httpx.HTTPError, OSError) as error:
        return describe_error(error, timeout)
    return f"HTTP {status}" if status >= 500 else None


def _name(url: str) -> str:
    return unquote(urlsplit(url).path.rsplit("/", 1)[-1])
