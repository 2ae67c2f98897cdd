"""One settings object, resolved once: flag > invoke.yaml > environment variable > default.

Nothing here reads the environment at import time; `resolve` takes the environment as an argument
so tests and subprocesses pass their own. `ENVIRONMENT` is the one registry of the variables
i2vkit reads, each documented (README's "Environment variables" table is generated from it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2vkit.errors import ConfigError


@dataclass(frozen=True)
class Settings:
    home: Path  # i2vkit's own state: envs, jobs, outputs
    hub_cache: Path  # the Hugging Face hub cache models are stored in
    model: str  # model catalogue name
    mirror: str  # mirror name, or "auto"
    token: str | None = field(default=None, repr=False)  # the server's API token: never printed
    startup_hook: str | None = None  # "module:function" the server calls with each runtime


@dataclass(frozen=True)
class EnvVar:
    name: str
    setting: str | None  # the Settings field it feeds, None when read by a library directly
    doc: str


# Every environment variable i2vkit reads or passes on, and why.
ENVIRONMENT: tuple[EnvVar, ...] = (
    EnvVar("I2VKIT_HOME", "home", "i2vkit's state folder (default: $XDG_DATA_HOME/i2vkit)"),
    EnvVar("I2VKIT_MODEL", "model", "default model name (default: i2vgen-xl)"),
    EnvVar("I2VKIT_MIRROR", "mirror", "default mirror name or 'auto' (default: default)"),
    EnvVar("HF_HUB_CACHE", "hub_cache", "Hugging Face hub cache; wins over HF_HOME"),
    EnvVar("HF_HOME", "hub_cache", "Hugging Face home; the hub cache is $HF_HOME/hub"),
    EnvVar("XDG_CACHE_HOME", "hub_cache", "base of the default HF cache (~/.cache)"),
    EnvVar("XDG_DATA_HOME", "home", "base of the default i2vkit home (~/.local/share)"),
    EnvVar(
        "I2VKIT_TOKEN", "token", "API token `i2vkit serve` requires (off loopback it must be set)"
    ),
    EnvVar(
        "I2VKIT_STARTUP_HOOK",
        "startup_hook",
        "`module:function` `i2vkit serve` calls with each loaded runner (custom processors, "
        "compile flags, fault injection in tests)",
    ),
    EnvVar("HF_TOKEN", None, "Hugging Face token for gated models; read by huggingface_hub"),
)


def _default_home(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "i2vkit"


def _default_hub_cache(environ: Mapping[str, str]) -> Path:
    # Same precedence as huggingface_hub.constants, computed here so that resolving settings
    # never imports huggingface_hub (which reads the environment at its import).
    if environ.get("HF_HUB_CACHE"):
        return Path(environ["HF_HUB_CACHE"])
    if environ.get("HF_HOME"):
        return Path(environ["HF_HOME"]) / "hub"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "huggingface" / "hub"


_DEFAULTS: dict[str, Callable[[Mapping[str, str]], Any]] = {
    "home": lambda env: Path(env["I2VKIT_HOME"]) if env.get("I2VKIT_HOME") else _default_home(env),
    "hub_cache": _default_hub_cache,
    "model": lambda env: env.get("I2VKIT_MODEL") or "i2vgen-xl",
    "mirror": lambda env: env.get("I2VKIT_MIRROR") or "default",
    "token": lambda env: env.get("I2VKIT_TOKEN") or None,
    "startup_hook": lambda env: env.get("I2VKIT_STARTUP_HOOK") or None,
}

_PARSE: dict[str, Callable[[Any], Any]] = {
    "home": lambda v: Path(v).expanduser(),
    "hub_cache": lambda v: Path(v).expanduser(),
    "model": str,
    "mirror": str,
    "token": str,
    "startup_hook": str,
}


def resolve(
    flags: Mapping[str, Any] | None = None,
    config: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings from flags (None = not given), invoke.yaml's `i2vkit:` section, env."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    config = dict(config or {})
    environ = os.environ if environ is None else environ
    fields = [f.name for f in dataclasses.fields(Settings)]
    for source, given in (("flag", flags), ("invoke.yaml i2vkit", config)):
        unknown = sorted(set(given) - set(fields))
        if unknown:
            raise ConfigError(
                f"{source} setting {unknown[0]!r} is unknown; known: {', '.join(fields)}"
            )
    values: dict[str, Any] = {}
    for name in fields:
        raw = flags.get(name, config.get(name))
        values[name] = _PARSE[name](raw) if raw is not None else _DEFAULTS[name](environ)
    return Settings(**values)
