"""Catalogues of loopback stand-ins for the mirror tests, and what a venv has installed."""

from __future__ import annotations

from pathlib import Path

from i2vkit.mirrors.catalogue import Catalogue, from_data

SLOW_S = 0.4  # the slow mirror's delay per request; the fast ones answer in milliseconds
VARIANT = "cu126"


def catalogue_for(urls: dict[str, str], torch_url: str | None = None) -> Catalogue:
    """A catalogue of PyPI mirrors at `urls` (in that order); `aliyun` gets the torch page."""
    mirror: dict = {name: {"pypi": {"url": f"{url}/simple"}} for name, url in urls.items()}
    if torch_url and "aliyun" in mirror:
        mirror["aliyun"]["torch"] = {
            "url": torch_url + "/{variant}",
            "layout": "find-links",
            "variants": [VARIANT],
        }
    probe = {"pypi_project": "alpha", "torch_variant": VARIANT, "sample_bytes": 65536}
    return from_data({"order": list(urls), "probe": probe, "mirror": mirror}, "test catalogue")


def installed(venv: Path) -> set[str]:
    site = next((venv / "lib").glob("python*/site-packages"))
    return {p.name.split("-")[0].lower() for p in site.glob("*.dist-info")}
