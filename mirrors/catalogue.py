"""The mirror catalogue: data/mirrors.toml (plus custom mirrors from invoke.yaml) loaded into
strict, frozen models and checked (mirrors/choose.py turns it into a per-kind choice).

Assumes nothing about the network: loading is pure. The catalogue is a value, so tests pass
their own (pointing at loopback servers) wherever the real one would be used.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import ConfigDict, Field, ValidationError

from i2vkit.data import StrictModel, first_error, packaged, read_toml
from i2vkit.errors import ConfigError, UnknownNameError
from i2vkit.net import is_loopback

DATA = packaged("i2vkit.mirrors", "data", "mirrors.toml")

KINDS = ("pypi", "torch", "conda", "hf", "modelscope", "docker", "debian", "ubuntu")
APT_KINDS = ("debian", "ubuntu")  # apt checks signatures itself: plain http is allowed


class Endpoint(StrictModel):
    url: str
    source: str = ""  # the page documenting the URL; custom mirrors may leave it out


class PypiEndpoint(Endpoint):
    files: str | None = None  # base of file URLs (for rewriting lockfiles); None: not known


class TorchEndpoint(Endpoint):
    layout: Literal["simple", "find-links"] = "simple"  # PEP 503 index, or a flat page of links
    variants: tuple[str, ...] = ()

    def for_variant(self, variant: str) -> str:
        return self.url.replace("{variant}", variant)


class CondaEndpoint(Endpoint):
    custom: str  # base URL for custom_channels (conda-forge, pytorch)


class Mirror(StrictModel):
    title: str = ""
    site: str = ""
    pypi: PypiEndpoint | None = None
    torch: TorchEndpoint | None = None
    conda: CondaEndpoint | None = None
    hf: Endpoint | None = None
    modelscope: Endpoint | None = None
    docker: Endpoint | None = None
    debian: Endpoint | None = None
    ubuntu: Endpoint | None = None

    def endpoint(self, kind: str, variant: str | None = None) -> Endpoint | None:
        found: Endpoint | None = getattr(self, kind)
        if isinstance(found, TorchEndpoint) and variant and variant not in found.variants:
            return None
        return found


class Gone(StrictModel):
    mirror: str  # "*" for every mirror
    kind: str
    url: str
    since: str
    why: str
    source: str


class ProbeTargets(StrictModel):
    pypi_project: str = "pip"
    torch_project: str = "torch"
    torch_variant: str = "cu126"
    hf_repo: str = "ali-vilab/i2vgen-xl"
    modelscope_repo: str = "Wan-AI/Wan2.2-TI2V-5B-Diffusers"
    debian_suite: str = "bookworm"
    ubuntu_suite: str = "noble"
    sample_bytes: int = 262144


class Catalogue(StrictModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    schema_version: int = Field(1, alias="schema")
    order: tuple[str, ...]
    probe: ProbeTargets = ProbeTargets()
    mirror: dict[str, Mirror]
    gone: tuple[Gone, ...] = ()

    def get(self, name: str) -> Mirror:
        if name not in self.mirror:
            raise UnknownNameError("mirror", name, [*self.mirror, "auto"])
        return self.mirror[name]

    def gone_for(self, name: str, kind: str) -> Gone | None:
        return next((g for g in self.gone if g.kind == kind and g.mirror == name), None)


def check_url(url: str, kind: str = "") -> str | None:
    """Why `url` is refused, or None when it is fine: https, or http on loopback (or for apt)."""
    if any(c.isspace() for c in url):
        return "it contains whitespace"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as error:
        return f"it is malformed ({error})"
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "it is not an http(s) URL with a host"
    if parts.scheme == "http" and kind not in APT_KINDS and not is_loopback(parts.hostname):
        return "plain http is allowed only on loopback; use https"
    return None


def _check(catalogue: Catalogue, where: str) -> Catalogue:
    for name, mirror in catalogue.mirror.items():
        for kind in KINDS:
            endpoint = mirror.endpoint(kind)
            if endpoint is None:
                continue
            extra = (getattr(endpoint, f, None) for f in ("files", "custom"))
            urls = [endpoint.url, *(u for u in extra if u)]
            for url in urls:
                reason = check_url(url.replace("{variant}", "cpu"), kind)
                if reason:
                    raise ConfigError(
                        f"{where}: mirror {name!r} {kind} URL {url!r} is refused: {reason}"
                    )
            if isinstance(endpoint, TorchEndpoint) and "{variant}" not in endpoint.url:
                raise ConfigError(
                    f"{where}: mirror {name!r} torch URL {endpoint.url!r} needs a "
                    "'{variant}' placeholder (e.g. https://host/whl/{variant})"
                )
            if catalogue.gone_for(name, kind):
                raise ConfigError(f"{where}: mirror {name!r} offers {kind}, listed as gone")
    unknown = [n for n in catalogue.order if n not in catalogue.mirror]
    if unknown:
        raise ConfigError(f"{where}: order names unknown mirror {unknown[0]!r}")
    return catalogue


def from_data(raw: Mapping[str, Any], where: str = "catalogue") -> Catalogue:
    """A catalogue from already-parsed data (tests build theirs pointing at loopback)."""
    try:
        return _check(Catalogue.model_validate(raw), where)
    except ValidationError as error:
        raise ConfigError(f"{where}: {first_error(error)}") from error


def load(path: Path = DATA, custom: Mapping[str, Any] | None = None) -> Catalogue:
    """The catalogue at `path`, with custom mirrors (invoke.yaml's table) added in front."""
    catalogue = from_data(read_toml(path), str(path))
    if not custom:
        return catalogue
    mirrors = dict(catalogue.mirror)
    for name, raw in custom.items():
        try:
            mirrors[str(name)] = Mirror.model_validate(raw)
        except ValidationError as error:
            raise ConfigError(f"custom mirror {name!r}: {first_error(error)}") from error
    order = [*custom, *(n for n in catalogue.order if n not in custom)]
    merged = catalogue.model_copy(update={"mirror": mirrors, "order": tuple(order)})
    return _check(merged, "invoke.yaml custom mirrors")
