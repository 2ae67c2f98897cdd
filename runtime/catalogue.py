"""The runtime's data files: models, presets, torch wheel variants. Loaded on first use."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TypeVar

from pydantic import Field

from i2vkit.data import StrictModel, load_toml
from i2vkit.errors import UnknownNameError

DATA = Path(__file__).with_name("data")


class Preset(StrictModel):
    name: str
    tier: str  # the host tier named after the largest preset its best GPU runs
    height: int = Field(gt=0, multiple_of=8)
    width: int = Field(gt=0, multiple_of=8)
    frames: int = Field(gt=0)
    steps: int = Field(gt=0)
    min_vram_gib: float = Field(gt=0)
    cpu: bool
    note: str = ""


class Presets(StrictModel):
    schema_: int = Field(alias="schema")
    preset: tuple[Preset, ...]


class Model(StrictModel):
    name: str
    repo_id: str
    revision: str
    family: str
    variant: str
    params: int
    download_bytes: int
    gated: bool
    license: str
    note: str = ""


class Models(StrictModel):
    schema_: int = Field(alias="schema")
    model: tuple[Model, ...]


class TorchVariant(StrictModel):
    name: str
    cuda: str
    min_driver_linux: str
    min_driver_linux_compat: str
    archs: tuple[str, ...]
    first_torch: str
    last_torch: str
    experimental_below: str = ""
    index_url: str
    source: str
    note: str = ""


class ArchDriver(StrictModel):
    capability: str
    family: str
    min_driver_linux: str
    source: str
    note: str = ""


class TorchVariants(StrictModel):
    schema_: int = Field(alias="schema")
    torch: str  # the torch release i2vkit pins
    variant: tuple[TorchVariant, ...]
    arch_driver: tuple[ArchDriver, ...] = ()


@cache
def presets() -> tuple[Preset, ...]:
    return load_toml(DATA / "presets.toml", Presets).preset


@cache
def models() -> tuple[Model, ...]:
    return load_toml(DATA / "models.toml", Models).model


@cache
def torch_variants() -> TorchVariants:
    return load_toml(DATA / "torch_variants.toml", TorchVariants)


def preset(name: str) -> Preset:
    return _by_name("preset", name, presets())


def model(name: str) -> Model:
    return _by_name("model", name, models())


T = TypeVar("T", Preset, Model)


def _by_name(kind: str, name: str, items: tuple[T, ...]) -> T:
    for item in items:
        if item.name == name:
            return item
    raise UnknownNameError(kind, name, (i.name for i in items))
