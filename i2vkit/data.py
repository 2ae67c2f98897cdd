"""Data files (TOML) shipped inside the package, loaded into strict, frozen models that reject
unknown fields.

pydantic rather than hand-written checks: it is already in the light layer (conda-lock needs it)
and gives exact error locations ("model.3.params: Input should be a valid integer"). Files are
found with importlib.resources, so they are read the same from a checkout and from a wheel.
"""

from __future__ import annotations

import importlib.resources
import sys
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from i2vkit.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


M = TypeVar("M", bound=StrictModel)


def packaged(package: str, *parts: str) -> Path:
    """A file or folder shipped inside `package` (i2vkit installs as plain files, never zipped,
    so it is a real path)."""
    return Path(str(importlib.resources.files(package).joinpath(*parts)))


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; any problem is a ConfigError naming it."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from error


def first_error(error: ValidationError) -> str:
    """pydantic's first complaint as 'where: what' ('mirror.tuna.pypi.url: Field required')."""
    first = error.errors()[0]
    return f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"


def load_toml(path: Path, model: type[M]) -> M:
    """Parse `path` into `model`; any problem is a ConfigError naming the file and the field."""
    raw = read_toml(path)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        raise ConfigError(f"{path}: {first_error(error)}") from error


def checkout() -> Path | None:
    """The i2vkit checkout this code runs from, or None when it is installed from a wheel (the
    checkout holds what a wheel does not: pyproject.toml and the Docker build context)."""
    root = Path(__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "images" / "Dockerfile").is_file():
        return root
    return None


def need_checkout(what: str) -> Path:
    """The checkout, or a ConfigError saying that `what` needs one and where to get it."""
    root = checkout()
    if root is None:
        raise ConfigError(
            f"{what} needs an i2vkit checkout (this i2vkit is installed at "
            f"{Path(__file__).resolve().parent}): git clone https://github.com/i2vkit/i2vkit and "
            "run it there"
        )
    return root
