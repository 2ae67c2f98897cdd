"""The conda backends: py-rattler installs the lockfile from a loopback mirror (real http
servers serving a real channel), fails over past dead ones, and says what to do when the
lockfile or the platform is missing. `detect` looks for conda executables on a PATH."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest

from i2vkit.env import conda, condalock
from i2vkit.env.conda_exe import detect
from i2vkit.errors import CondaInstallError, LockfileMissingError, PlatformNotLockedError
from i2vkit.mirrors.catalogue import Catalogue, from_data
from i2vkit.mirrors.choose import choose
from i2vkit.mirrors.rewrite import to_canonical
from tests.helpers.conda import SOLVED, catalogue_data, mirror_tree, render_explicit
from tests.helpers.servers import StaticServer, closed_port


@pytest.fixture(scope="module")
def mirror_root(tmp_path_factory: pytest.TempPathFactory, conda_channel: Path) -> Path:
    return mirror_tree(conda_channel, tmp_path_factory.mktemp("mirror"))


@pytest.fixture
def servers(mirror_root: Path):
    started = [StaticServer(mirror_root), StaticServer(mirror_root)]
    yield started
    for server in started:
        server.stop()


def meta(prefix: Path) -> dict[str, dict]:
    found = {}
    for path in (prefix / "conda-meta").glob("*.json"):
        data = json.loads(path.read_text(encoding="utf-8"))
        found[data["name"]] = data
    return found


def test_rattler_installs_from_the_mirror_what_conda_lock_renders(
    conda_lockfile: Path, servers, mirror_root: Path, tmp_path: Path
) -> None:
    good = servers[0]
    catalogue = from_data(catalogue_data({"tuna": good.url}))
    plan = choose(catalogue, "tuna")
    prefix = tmp_path / "env"
    seen: dict[str, int] = {}
    result = conda.install_rattler(
        conda_lockfile, prefix, catalogue, plan, platform="linux-64",
        cache_dir=tmp_path / "pkgs", progress=lambda name, done, total: seen.update({name: done}),
    )  # fmt: skip
    installed = meta(prefix)
    assert {n: d["version"] for n, d in installed.items()} == SOLVED
    mirror_cf = f"{good.url}/anaconda/cloud/conda-forge"
    for data in installed.values():
        assert data["url"].startswith(f"{mirror_cf}/noarch/")
        assert data["channel"].rstrip("/") == mirror_cf
    # exactly what conda-lock renders from the same lockfile, once pointed back upstream
    rules = conda.mirror_rules(catalogue, "tuna")
    ours = sorted(to_canonical(f"{d['url']}#{d['md5']}", rules) for d in installed.values())
    assert ours == sorted(render_explicit(conda_lockfile, "linux-64", tmp_path))
    assert sorted(p.rsplit("/", 1)[1] for p in good.paths) == sorted(
        d["fn"] for d in installed.values()
    )
    assert (prefix / "share" / "i2vkit-test" / "tiny-a.txt").read_text().startswith("tiny-a 1.0")
    # the result: every package from tuna, with the bytes the server sent
    assert result.ok and {p.mirror for p in result.packages} == {"tuna"}
    files = mirror_root / "anaconda" / "cloud" / "conda-forge" / "noarch"
    sizes = {d["name"]: (files / d["fn"]).stat().st_size for d in installed.values()}
    assert {p.name: p.bytes for p in result.packages} == sizes == seen
    assert result.bytes_by_mirror() == {"tuna": sum(sizes.values())} and sizes["tiny-d"] > 40_000


def test_dead_mirrors_fail_over_to_the_next(conda_lockfile: Path, servers, tmp_path: Path) -> None:
    good = servers[1]
    dead = f"http://127.0.0.1:{closed_port()}"
    missing = f"{servers[0].url}/no/such/path"
    catalogue = from_data(catalogue_data({"tuna": dead, "aliyun": missing, "sjtu": good.url}))
    notes: list[str] = []
    result = conda.install_rattler(
        conda_lockfile, tmp_path / "env", catalogue, choose(catalogue, "tuna"),
        platform="linux-aarch64", cache_dir=tmp_path / "pkgs", notify=notes.append,
    )  # fmt: skip
    assert [(a.mirror, a.ok) for a in result.attempts] == [
        ("tuna", False), ("aliyun", False), ("sjtu", True)
    ]  # fmt: skip
    refused, not_found = result.attempts[0], result.attempts[1]
    assert refused.package in SOLVED and f"mirror tuna ({dead}/" in (refused.reason or "")
    assert "refused" in (refused.reason or "").lower()
    assert not_found.package in SOLVED and "404" in (not_found.reason or "")
    assert len(notes) == 2 and notes[1].endswith("switching conda to sjtu")
    assert "switched conda from aliyun to sjtu" in result.summary()
    assert {d["url"].split("/anaconda/")[0] for d in meta(tmp_path / "env").values()} == {good.url}
    assert {p.mirror for p in result.packages} == {"sjtu"}


def test_when_every_mirror_fails_the_error_names_package_and_mirror(
    conda_lockfile: Path, tmp_path: Path
) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    catalogue = from_data(catalogue_data({"tuna": dead}))
    plan = choose(catalogue, "tuna")
    plan = dataclasses.replace(plan, chains={**plan.chains, "conda": ("tuna",)})
    with pytest.raises(CondaInstallError) as caught:
        conda.install_rattler(
            conda_lockfile, tmp_path / "env", catalogue, plan, cache_dir=tmp_path / "pkgs"
        )
    message = str(caught.value)
    assert "mirror tuna" in message and "could not be fetched" in message
    assert any(name in message for name in SOLVED)
    assert not caught.value.result.ok


def _catalogue(port: int) -> Catalogue:
    return from_data(catalogue_data({"tuna": f"http://127.0.0.1:{port}"}))


def test_a_missing_lockfile_says_to_run_invoke_lock(tmp_path: Path) -> None:
    catalogue = _catalogue(closed_port())
    missing = tmp_path / "conda-lock.yml"
    with pytest.raises(LockfileMissingError, match="i2vkit lock") as caught:
        conda.install_rattler(missing, tmp_path / "env", catalogue, choose(catalogue, "tuna"))
    assert str(missing) in str(caught.value)
    assert isinstance(caught.value, FileNotFoundError)
    assert not (tmp_path / "env").exists()


def test_a_platform_not_in_the_lockfile_names_it_and_the_fix(
    conda_lockfile: Path, tmp_path: Path
) -> None:
    catalogue = _catalogue(closed_port())
    with pytest.raises(PlatformNotLockedError) as caught:
        conda.install_rattler(
            conda_lockfile, tmp_path / "env", catalogue, choose(catalogue, "tuna"),
            platform="osx-arm64",
        )  # fmt: skip
    message = str(caught.value)
    assert "'osx-arm64'" in message and "linux-64, linux-aarch64" in message
    assert "i2vkit lock" in message and str(conda_lockfile) in message
    assert not (tmp_path / "env").exists()


def test_planned_lists_mirror_urls_offline(conda_lockfile: Path) -> None:
    catalogue = _catalogue(closed_port())  # nothing listens: planning must not touch it
    plan = choose(catalogue, "tuna")
    rows = conda.planned(conda_lockfile, catalogue, plan, platform="linux-64")
    assert sorted(p.name for p, _ in rows) == sorted(SOLVED)
    base = catalogue.mirror["tuna"].conda.custom  # type: ignore[union-attr]
    assert all(url.startswith(f"{base}/conda-forge/noarch/") for _, url in rows)
    assert condalock.digest(conda_lockfile, "linux-64") == condalock.digest(
        conda_lockfile, "linux-aarch64"
    )  # noarch packages: the same files serve both platforms


def _exe(folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_detect_prefers_mamba_then_micromamba_then_conda(tmp_path: Path) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    _exe(one, "conda")
    _exe(two, "micromamba")
    path = os.pathsep.join([str(one), str(two)])
    found = detect(path=path, environ={})
    assert found.name == "micromamba" and found.exe == two / "micromamba"
    _exe(two, "mamba")
    assert detect(path=path, environ={}).name == "mamba"
    assert "mamba" in detect(path=path, environ={}).reason


def test_detect_without_executables_says_rattler_is_used(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    found = detect(path=str(empty), environ={})
    assert found.name is None and found.exe is None and "rattler" in found.reason
    # micromamba's shell hook makes `micromamba` a function and keeps the binary in MAMBA_EXE
    binary = _exe(tmp_path / "opt", "micromamba")
    found = detect(path=str(empty), environ={"MAMBA_EXE": str(binary)})
    assert found.name == "micromamba" and "MAMBA_EXE" in found.reason
