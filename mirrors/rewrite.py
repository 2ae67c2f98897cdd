"""Lockfiles keep canonical (upstream) URLs; the mirror is applied when installing.

`to_mirror` rewrites every upstream URL in a lockfile's text to the chosen mirror, and
`to_canonical` does the reverse for a lock written while a mirror was in use. Hashes are left
alone, so a mirror serving a different file is still caught by the installer. One lockfile
therefore serves every mirror. "Canonical" means the catalogue's `default` mirror.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from i2vkit.mirrors.catalogue import (
    KINDS,
    Catalogue,
    CondaEndpoint,
    Mirror,
    PypiEndpoint,
    TorchEndpoint,
)
from i2vkit.mirrors.choose import MirrorPlan
from i2vkit.mirrors.render import CONDA_CUSTOM_CHANNELS

CANONICAL = "default"
_URL = re.compile(r"https?://[^\s\"'<>)\]]+")

Rule = tuple[str, str]  # (canonical prefix, mirror prefix)


def _prefixes(mirror: Mirror, kind: str, variants: Iterable[str]) -> dict[str, str]:
    """Named URL prefixes a mirror offers for `kind`, keyed so that two mirrors line up."""
    endpoint = mirror.endpoint(kind)
    out: dict[str, str] = {}
    if isinstance(endpoint, PypiEndpoint):
        out["index"] = endpoint.url
        if endpoint.files:
            out["files"] = endpoint.files
    elif isinstance(endpoint, TorchEndpoint):
        out.update({v: endpoint.for_variant(v) for v in variants if v in endpoint.variants})
    elif isinstance(endpoint, CondaEndpoint):
        out["main"] = endpoint.url
        custom = endpoint.custom.rstrip("/")
        out.update({c: f"{custom}/{c}" for c in CONDA_CUSTOM_CHANNELS})
    elif endpoint is not None:
        out["base"] = endpoint.url
    return out


def rules(catalogue: Catalogue, plan: MirrorPlan) -> list[Rule]:
    """Canonical -> mirror prefix pairs for every kind the plan takes from a mirror."""
    canonical = catalogue.mirror[CANONICAL]
    variants = [plan.variant]
    if canonical.torch is not None:
        variants = list(canonical.torch.variants)
    pairs: list[Rule] = []
    for kind, pick in plan.picks.items():
        if pick.mirror == CANONICAL:
            continue
        ours = _prefixes(catalogue.mirror[pick.mirror], kind, variants)
        theirs = _prefixes(canonical, kind, variants)
        pairs += [(theirs[key].rstrip("/"), ours[key].rstrip("/")) for key in theirs if key in ours]
    # Longest first, so https://conda.anaconda.org/conda-forge wins over a shorter prefix.
    return sorted(pairs, key=lambda p: len(p[0]), reverse=True)


def _swap(url: str, pairs: Iterable[Rule], reverse: bool = False) -> str:
    for canonical, mirror in pairs:
        old, new = (mirror, canonical) if reverse else (canonical, mirror)
        if url == old or url.startswith(old + "/"):
            return new + url[len(old) :]
    return url


def rewrite_url(url: str, pairs: list[Rule]) -> str:
    return _swap(url, pairs)


def to_mirror(text: str, pairs: list[Rule]) -> str:
    """`text` (any lockfile format) with every canonical URL pointed at the mirror."""
    return _URL.sub(lambda m: _swap(m.group(0), pairs), text)


def to_canonical(text: str, pairs: list[Rule]) -> str:
    """The reverse of `to_mirror`: mirror URLs back to the upstream ones."""
    by_mirror = sorted(pairs, key=lambda p: len(p[1]), reverse=True)
    return _URL.sub(lambda m: _swap(m.group(0), by_mirror, reverse=True), text)


def mirror_of(url: str, catalogue: Catalogue) -> str | None:
    """Which catalogued mirror a URL belongs to: the longest matching endpoint prefix, else the
    same origin (a PyPI mirror's files often live beside its index, under /packages)."""
    best: tuple[int, str] | None = None
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(url))
    for name, mirror in catalogue.mirror.items():
        for kind in KINDS:
            for prefix in _prefixes(mirror, kind, _all_variants(mirror)).values():
                prefix = prefix.rstrip("/")
                if url.startswith(prefix + "/") or url == prefix:
                    score = len(prefix)
                elif "{0.scheme}://{0.netloc}".format(urlsplit(prefix)) == origin:
                    score = 0
                else:
                    continue
                if best is None or score > best[0]:
                    best = (score, name)
    return best[1] if best else None


def _all_variants(mirror: Mirror) -> tuple[str, ...]:
    return mirror.torch.variants if mirror.torch is not None else ()
