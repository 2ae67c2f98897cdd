"""Measure every mirror's endpoints at once: connect, first byte, and a small real download.

One daemon thread per endpoint, all started together, each with short timeouts and no retries;
the caller waits until one shared deadline and reports whatever has not answered by then. Daemon
threads because a hung DNS lookup cannot be interrupted: it must not keep the process alive.
A mirror that answers with something that is not an index (a portal page, an error page served
with 200) is reported as such, not as fast; `answers_wrong` is the same check for one page, which
an install that found nothing makes before blaming the package.
"""

from __future__ import annotations

import re
import ssl
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from i2vkit.mirrors.catalogue import KINDS, Catalogue, CondaEndpoint, Endpoint, TorchEndpoint

DEADLINE_S = 2.5  # whole probe, wall clock: the budget is 3 s including start-up
CONNECT_S = 1.5  # DNS + TCP + TLS for one endpoint
MIN_SAMPLE = 32 * 1024  # below this the throughput figure is noise; rank by first byte only

_LINK = re.compile(rb"<a\s[^>]*href=[\"'][^\"']*\.(?:whl|tar\.gz|zip|tar\.bz2|conda)", re.I)
_REPODATA = re.compile(rb'^\s*\{\s*"(?:info|packages|packages\.conda|repodata_version)"')
_RELEASE = re.compile(rb"^(?:Origin|Label|Suite|Codename|Date):", re.M)
_HF_JSON = re.compile(rb'^\s*\{.*"(?:id|modelId|_id)"\s*:', re.S)
_MS_JSON = re.compile(rb'^\s*\{.*"(?:Data|Files)"\s*:', re.S)


@dataclass(frozen=True)
class Measurement:
    """One endpoint's result. `reason` is None when it answered as the index it should be."""

    mirror: str
    kind: str
    url: str
    reason: str | None = None
    connect_s: float | None = None
    first_byte_s: float | None = None
    sample_bytes: int = 0
    throughput: float | None = None  # bytes/s after the first byte; None if sample too small
    status: int | None = None  # the HTTP status it answered with; None: no answer

    @property
    def ok(self) -> bool:
        return self.reason is None

    @property
    def answered_wrong(self) -> bool:
        """It answered without an error status, but not as the index it should be (a portal or
        login page): unlike a refusal or a timeout, nothing a later try would find different."""
        return self.reason is not None and self.status is not None and self.status < 400

    @property
    def score(self) -> float:
        """Estimated seconds to fetch 1 MiB: lower is better."""
        if self.first_byte_s is None:
            return float("inf")
        if self.throughput:
            return self.first_byte_s + 1024 * 1024 / self.throughput
        return self.first_byte_s


@dataclass(frozen=True)
class ProbeResult:
    measurements: tuple[Measurement, ...]
    wall_s: float
    variant: str

    def ranking(self) -> dict[str, list[str]]:
        """Per kind, the mirrors that answered as an index, fastest first."""
        out: dict[str, list[str]] = {k: [] for k in KINDS}
        for m in sorted(self.measurements, key=lambda m: m.score):
            if m.ok:
                out[m.kind].append(m.mirror)
        return out

    def not_indexes(self) -> dict[str, dict[str, str]]:
        """Per kind, the mirrors that answered with something that is not an index, and why."""
        out: dict[str, dict[str, str]] = {}
        for m in self.measurements:
            if m.answered_wrong and m.reason:
                out.setdefault(m.kind, {})[m.mirror] = m.reason
        return out

    def winners(self) -> dict[str, Measurement | None]:
        best: dict[str, Measurement | None] = {k: None for k in KINDS}
        for m in self.measurements:
            current = best[m.kind]
            if m.ok and (current is None or m.score < current.score):
                best[m.kind] = m
        return best


def probe_url(catalogue: Catalogue, kind: str, endpoint: Endpoint, variant: str) -> str:
    """The small page the probe fetches for one endpoint."""
    t = catalogue.probe
    base = endpoint.url.rstrip("/")
    if isinstance(endpoint, TorchEndpoint):
        base = endpoint.for_variant(variant).rstrip("/")
        return f"{base}/{t.torch_project}/" if endpoint.layout == "simple" else f"{base}/"
    if isinstance(endpoint, CondaEndpoint):
        return f"{base}/noarch/repodata.json"
    return {
        "pypi": f"{base}/{t.pypi_project}/",
        # the revision form is what huggingface_hub itself asks; mirrors (olah) serve it too
        "hf": f"{base}/api/models/{t.hf_repo}/revision/main",
        # the file listing modelscope.snapshot_download itself asks for first
        "modelscope": f"{base}/api/v1/models/{t.modelscope_repo}/repo/files?Revision=master",
        "docker": f"{base}/v2/",
        "debian": f"{base}/dists/{t.debian_suite}/Release",
        "ubuntu": f"{base}/dists/{t.ubuntu_suite}/Release",
    }[kind]


def not_an_index(kind: str, response: httpx.Response, head: bytes) -> str | None:
    """Why this answer is not the index `kind` expects, or None when it looks right."""
    if kind == "docker":
        api = response.headers.get("docker-distribution-api-version", "")
        if response.status_code in (200, 401) and api.startswith("registry/2"):
            return None
        return f"HTTP {response.status_code} without a registry v2 API header: not a registry"
    if response.status_code >= 400:
        return f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    checks = {
        "pypi": (_LINK, "not a PEP 503 simple index (no package links)"),
        "torch": (_LINK, "not a wheel index (no wheel links)"),
        "conda": (_REPODATA, "not a conda channel (no repodata.json)"),
        "hf": (_HF_JSON, "not a Hugging Face Hub API (no model JSON)"),
        "modelscope": (_MS_JSON, "not a ModelScope API (no file listing)"),
        "debian": (_RELEASE, "not an apt archive (no Release file)"),
        "ubuntu": (_RELEASE, "not an apt archive (no Release file)"),
    }
    pattern, why = checks[kind]
    if kind in ("pypi", "torch") and "json" in response.headers.get("content-type", ""):
        return None if b'"files"' in head else why  # PEP 691 JSON simple API
    return None if pattern.search(head) else why


def describe_error(error: BaseException, timeout: float) -> str:
    """A short reason people can act on, from an httpx (or socket) error."""
    text = str(error) or type(error).__name__
    lowered = text.lower()
    if isinstance(error, httpx.ConnectTimeout):
        return f"no connection within {timeout:.1f} s"
    if isinstance(error, httpx.TimeoutException):
        return f"connected, but no answer within {timeout:.1f} s"
    dns = ("name or service not known", "nodename nor servname", "temporary failure in name")
    if any(s in lowered for s in (*dns, "no address associated", "getaddrinfo")):
        return "DNS: the name does not resolve"
    if "connection refused" in lowered:
        return "connection refused"
    if "certificate" in lowered:
        return "TLS: the certificate is not trusted"
    return f"{type(error).__name__}: {text}"


def _measure(
    client: httpx.Client, mirror: str, kind: str, url: str, limit: int, deadline: float
) -> Measurement:
    start = time.monotonic()
    connected: list[float] = []

    def trace(event: str, info: Mapping[str, Any]) -> None:
        if event in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            connected.append(time.monotonic() - start)

    remaining = max(0.1, deadline - start)
    timeout = httpx.Timeout(remaining, connect=min(CONNECT_S, remaining))
    try:
        request = client.build_request("GET", url, timeout=timeout, extensions={"trace": trace})
        response = client.send(request, stream=True)
        try:
            first = time.monotonic() - start
            head, got = b"", 0
            first_chunk_at = None
            for chunk in response.iter_bytes():
                first_chunk_at = first_chunk_at or time.monotonic()
                if len(head) < 65536:
                    head += chunk[: 65536 - len(head)]
                got += len(chunk)
                if got >= limit or time.monotonic() >= deadline:
                    break
            took = time.monotonic() - (first_chunk_at or time.monotonic())
        finally:
            response.close()
    except (httpx.HTTPError, OSError, ssl.SSLError) as error:
        return Measurement(mirror, kind, url, describe_error(error, remaining))
    reason = not_an_index(kind, response, head)
    throughput = got / took if got >= MIN_SAMPLE and took > 0 else None
    connect = connected[-1] if connected else None
    status = response.status_code
    return Measurement(mirror, kind, url, reason, connect, first, got, throughput, status)


def answers_wrong(url: str, kind: str, timeout: float = 5.0) -> str | None:
    """Why the page at `url` is not the index `kind` expects although the server answered it
    (a portal or login page served with 200), or None: an index page, an error status (a 404
    is an index saying "no such project"), or no answer at all (not this check's business)."""
    client = httpx.Client(verify=ssl.create_default_context(), follow_redirects=True,
                          timeout=timeout)  # fmt: skip
    try:
        with client, client.stream("GET", url) as response:
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if len(head) >= 65536:
                    break
    except (httpx.HTTPError, OSError, ssl.SSLError):
        return None
    if response.status_code >= 400:
        return None
    return not_an_index(kind, response, head[:65536])


def targets(catalogue: Catalogue, kinds: Iterable[str], variant: str) -> list[tuple[str, str, str]]:
    """(mirror, kind, url) for every endpoint the catalogue offers for `kinds`."""
    out = []
    for name in catalogue.order:
        mirror = catalogue.mirror[name]
        for kind in kinds:
            endpoint = mirror.endpoint(kind, variant)
            if endpoint is not None:
                out.append((name, kind, probe_url(catalogue, kind, endpoint, variant)))
    return out


def probe(
    catalogue: Catalogue,
    kinds: Iterable[str] = KINDS,
    variant: str | None = None,
    deadline_s: float = DEADLINE_S,
) -> ProbeResult:
    """Probe every endpoint in parallel; return within about `deadline_s` whatever happens."""
    variant = variant or catalogue.probe.torch_variant
    jobs = targets(catalogue, list(kinds), variant)
    started = time.monotonic()
    deadline = started + deadline_s
    results: dict[int, Measurement] = {}
    done = threading.Condition()
    # The system trust store, not certifi's: hosts behind a TLS-inspecting proxy trust its CA
    # there, and pip/uv/conda are configured the same way.
    client = httpx.Client(verify=ssl.create_default_context(), follow_redirects=True)

    def work(i: int, mirror: str, kind: str, url: str) -> None:
        limit = catalogue.probe.sample_bytes
        try:
            result = _measure(client, mirror, kind, url, limit, deadline)
        except Exception as error:  # a probe must never take the table down with it
            result = Measurement(mirror, kind, url, f"probe error: {error!r}")
        with done:
            results[i] = result
            done.notify()

    for i, job in enumerate(jobs):
        threading.Thread(target=work, args=(i, *job), daemon=True, name=f"probe-{i}").start()
    with done:
        left = max(0.0, deadline - time.monotonic())
        done.wait_for(lambda: len(results) == len(jobs), timeout=left)
        finished = dict(results)
    late = f"no answer within {deadline_s:.1f} s"
    measurements = tuple(finished.get(i) or Measurement(*job, late) for i, job in enumerate(jobs))
    # The client is left to the daemon threads still blocked in it; closing it under them
    # would only turn their late answers into errors nobody reads.
    return ProbeResult(measurements, time.monotonic() - started, variant)
