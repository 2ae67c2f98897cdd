"""A mirror name ('tuna', 'auto', a custom one) becomes a MirrorPlan: per kind, the mirror that
serves it and the failover chain after it. Pure, except `resolve` with 'auto', which probes.

A kind the first choice lacks goes to the next mirror offering it, with a note saying why
(`tuna lacks hf (...); using hf-mirror`). With 'auto', a mirror the probe found answering with
something that is not an index (a captive portal's login page) is left out of that kind's chain,
with a note, unless no other mirror offers the kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from i2vkit.mirrors import failover
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
    # per kind, (mirror, why) for the mirrors the probe found not an index, left out of the chain
    left_out: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)

    def url(self, kind: str) -> str:
        pick = self.picks[kind]
        if isinstance(pick.endpoint, TorchEndpoint):
            return pick.endpoint.for_variant(self.variant)
        return pick.endpoint.url

    @property
    def notes(self) -> list[str]:
        return [p.note for p in self.picks.values() if p.note] + self.left_out_notes()

    def left_out_notes(self, kinds: Sequence[str] = KINDS) -> list[str]:
        return [failover.left_out(kind, mirror, why)
                for kind in kinds for mirror, why in self.left_out.get(kind, ())]  # fmt: skip


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
    not_indexes: Mapping[str, Mapping[str, str]] | None = None,
) -> MirrorPlan:
    """Pick a mirror per kind. `name` is a mirror or 'auto'; for 'auto', `ranking` gives the
    probe's order per kind (fastest first) and `not_indexes` the mirrors it found answering with
    something else (left out, unless that leaves none). A kind the first choice lacks goes to
    the next mirror offering it, with a note saying why."""
    variant = variant or catalogue.probe.torch_variant
    if name != "auto":
        catalogue.get(name)  # raises UnknownNameError listing the known names
    picks: dict[str, Pick] = {}
    chains: dict[str, tuple[str, ...]] = {}
    left_out: dict[str, tuple[tuple[str, str], ...]] = {}
    for kind in KINDS:
        first = [*(ranking or {}).get(kind, ())] if name == "auto" else [name]
        rest = [n for n in catalogue.order if n not in first]
        chain = tuple(
            n for n in [*first, *rest] if catalogue.mirror[n].endpoint(kind, variant) is not None
        )
        wrong = (not_indexes or {}).get(kind, {}) if name == "auto" else {}
        if any(n not in wrong for n in chain):
            left_out[kind] = tuple((n, wrong[n]) for n in chain if n in wrong)
            chain = tuple(n for n in chain if n not in wrong)
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
    return MirrorPlan(name, variant, picks, chains, {k: v for k, v in left_out.items() if v})


def resolve(catalogue: Catalogue, name: str, variant: str | None = None) -> MirrorPlan:
    """The plan for a mirror name, or for 'auto' the fastest answering mirror per kind."""
    if name != "auto":
        return choose(catalogue, name, variant)
    result = probe(catalogue, variant=variant)
    return choose(catalogue, "auto", variant, result.ranking(), result.not_indexes())
