"""One module per model family. Each defines `FAMILY` (runtime/pipelines/base.py): `run` drives
a loaded diffusers pipeline through one generation, `build_tiny` builds its twin with random
weights. Adding a family is a module here, a line below, and rows in i2vkit/data/models.toml.
"""

from __future__ import annotations

from i2vkit.errors import UnknownNameError
from i2vkit.runtime.pipelines import hunyuan_video15, i2vgen_xl, ltx, ltx2, svd, wan
from i2vkit.runtime.pipelines.base import Family

FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        i2vgen_xl.FAMILY,
        svd.FAMILY,
        wan.FAMILY,
        ltx.FAMILY,
        ltx2.FAMILY,
        hunyuan_video15.FAMILY,
    )
}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise UnknownNameError("model family", name, FAMILIES)
    return FAMILIES[name]
