"""A mirror name ('tuna', 'auto', a custom one) becomes a MirrorPlan: per kind, the mirror that
serves it and the failover chain after it. Pure, except `resolve` with 'auto', which probes.

A kind the first choice lacks goes to the next mirror offering it, with a note saying why
(`tuna lacks hf (...); using hf-mirror`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from i2vkit.mirrors.catalogue import KINDS, Catalogue, Endpoint, TorchEndpoint
from i2vkit.mirrors.probe import probe


@dataclass(frozen=True)
class Pick:
    """Who serves one kind, and why it is not the mirror asked for (None when it is)."""

    kind: str
    mirror: str
    endpoint: Endpoint
    note: str | None = None


@dataclass(frozen=True)
class MirrorPlan:
    """The per-kind choice for one request ('tuna', 'auto', ...) and each kind's failover order."""

    requested: str
    variant: str
    picks: Mapping[str, Pick]
    chains: Mapping[str, tuple[str, ...]]  # mirror names, chosen first

    def url(self, kind: str) -> str:
        pick = self.picks[kind]
        if isinstance(pick.endpoint, TorchEndpoint):
            return pick.endpoint.for_variant(self.variant)
        return pick.endpoint.url

    @property
    def notes(self) -> list[str]:
        return [p.note for p in self.picks.values() if p.note]


def _lack_reason(catalogue: Catalogue, name: str, kind: str, variant: str) -> str:
    gone = catalogue.gone_for(name, kind)
    if gone:
        return f"{name} lacks {kind} ({gone.why})"
    if kind == "torch" and catalogue.mirror[name].torch is not None:
        return f"{name} has no torch wheels for {variant}"
    return f"{name} offers no {kind}"


def choose(
    catalogue: Catalogue,
    name: str,
    variant: str | None = None,
    ranking: Mapping[str, Sequence[str]] | None = None,
) -> MirrorPlan:
    """Pick a mirror per kind. `name` is a mirror or 'auto'; for 'auto', `ranking` gives the
    probe's order per kind (fastest first). A kind the first choice lacks goes to the next
    mirror offering it, with a note saying why."""
    variant = variant or catalogue.probe.torch_variant
    if name != "auto":
        catalogue.get(name)  # raises UnknownNameError listing the known names
    picks: dict[str, Pick] = {}
    chains: dict[str, tuple[str, ...]] = {}
    for kind in KINDS:
        first = [*(ranking or {}).get(kind, ())] if name == "auto" else [name]
        rest = [n for n in catalogue.order if n not in first]
        chain = tuple(
            n for n in [*first, *rest] if catalogue.mirror[n].endpoint(kind, variant) is not None
        )
        chains[kind] = chain
        if not chain:
            continue
        endpoint = catalogue.mirror[chain[0]].endpoint(kind, variant)
        assert endpoint is not None
        note = None
        if name == "auto" and not first:
            note = f"no mirror answered for {kind}; using {chain[0]}"
        elif name != "auto" and chain[0] != name:
            note = f"{_lack_reason(catalogue, name, kind, variant)}; using {chain[0]}"
        picks[kind] = Pick(kind, chain[0], endpoint, note)
    return MirrorPlan(name, variant, picks, chains)


def resolve(catalogue: Catalogue, name: str, variant: str | None = None) -> MirrorPlan:
    """The plan for a mirror name, or for 'auto' the fastest answering mirror per kind."""
    if name != "auto":
        return choose(catalogue, name, variant)
    result = probe(catalogue, variant=variant)
    return choose(catalogue, "auto", variant, result.ranking())
