"""`invoke lock`'s conda side: a real py-rattler solve against a local channel, written as a
conda-lock v1 lockfile that py-rattler and conda-lock itself both read back."""

from __future__ import annotations

from pathlib import Path

import pytest
import rattler
import yaml

from i2vkit.env import condalock
from i2vkit.errors import SolveError
from tests.helpers.conda import CANONICAL_CF, SOLVED, SPEC, render_explicit

PLATFORMS = ("linux-64", "linux-aarch64")


def test_lockfile_is_conda_lock_v1_with_canonical_urls(conda_lockfile: Path) -> None:
    data = yaml.safe_load(conda_lockfile.read_text(encoding="utf-8"))
    assert data["version"] == 1
    meta = data["metadata"]
    assert tuple(meta["platforms"]) == PLATFORMS
    assert set(meta["content_hash"]) == set(PLATFORMS)
    assert [c["url"] for c in meta["channels"]] == ["conda-forge"]
    assert meta["sources"] == ["environment.yml"]
    for package in data["package"]:
        assert package["manager"] == "conda"
        assert package["category"] == "main" and package["optional"] is False
        assert package["url"].startswith(f"{CANONICAL_CF}/noarch/"), package["url"]
        assert len(package["hash"]["md5"]) == 32 and len(package["hash"]["sha256"]) == 64
    a = next(p for p in data["package"] if p["name"] == "tiny-a")
    assert a["dependencies"] == {"tiny-b": ">=1", "tiny-c": ""}


def test_rattler_reads_both_platforms_back(conda_lockfile: Path) -> None:
    lock = rattler.LockFile.from_path(conda_lockfile)
    env = lock.default_environment()
    assert env is not None
    assert sorted(p.name for p in env.platforms()) == list(PLATFORMS)
    for platform in PLATFORMS:
        got = {p.name: p.version for p in condalock.packages(conda_lockfile, platform)}
        assert got == SOLVED


def test_conda_lock_renders_what_our_explicit_file_lists(
    conda_lockfile: Path, tmp_path: Path
) -> None:
    for platform in PLATFORMS:
        theirs = render_explicit(conda_lockfile, platform, tmp_path)
        ours = condalock.explicit(conda_lockfile, platform).splitlines()[2:]
        assert sorted(theirs) == sorted(ours)
        assert len(ours) == len(SOLVED)
        # dependencies before dependents: micromamba installs an explicit file in order
        names = [line.rsplit("/", 1)[1].rsplit("-", 2)[0] for line in ours]
        assert names.index("tiny-d") < names.index("tiny-c") < names.index("tiny-a")


def test_explicit_file_points_at_a_mirror_and_keeps_hashes(conda_lockfile: Path) -> None:
    mirror = "https://mirror.example/anaconda/cloud/conda-forge"
    lines = condalock.explicit(conda_lockfile, "linux-64", [(CANONICAL_CF, mirror)]).splitlines()
    urls = lines[2:]
    assert all(u.startswith(f"{mirror}/noarch/") for u in urls)
    md5 = {p.md5 for p in condalock.packages(conda_lockfile, "linux-64")}
    assert {u.split("#")[1] for u in urls} == md5


def test_lock_against_a_channel_url_and_one_platform(conda_channel: Path, tmp_path: Path) -> None:
    (tmp_path / "environment.yml").write_text(SPEC, encoding="utf-8")
    out = condalock.lock(
        tmp_path / "environment.yml",
        [conda_channel.as_uri()],
        ["linux-64"],
        tmp_path / "locks" / "conda-lock.yml",
        cache_dir=tmp_path / "cache",
    )
    assert condalock.locked_platforms(out) == ["linux-64"]
    urls = [p.url for p in condalock.packages(out, "linux-64")]
    assert all(u.startswith(f"{conda_channel.as_uri()}/noarch/") for u in urls)
    assert not list(out.parent.glob(".*.tmp"))  # the atomic write left nothing behind


def test_an_unsolvable_spec_names_the_platform(conda_channel: Path, tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text(SPEC.replace("tiny-b >=1,<3", "tiny-b >=5"), encoding="utf-8")
    out = tmp_path / "conda-lock.yml"
    with pytest.raises(SolveError, match=r"linux-64.*tiny-b"):
        condalock.lock(spec, [conda_channel.as_uri()], ["linux-64"], out, cache_dir=tmp_path)
    assert not out.exists()


def test_pip_dependencies_are_refused(tmp_path: Path) -> None:
    spec = tmp_path / "environment.yml"
    spec.write_text(SPEC + "  - pip:\n    - requests\n", encoding="utf-8")
    with pytest.raises(condalock.ConfigError, match=r"requests.*pip layer"):
        condalock.lock(spec, None, None, tmp_path / "conda-lock.yml")


def test_the_repo_spec_parses_for_both_platforms() -> None:
    spec = condalock._spec(condalock.SPEC, None, None)
    assert spec.platforms == ["linux-64", "linux-aarch64"]
    assert [c.url for c in spec.channels] == ["conda-forge"]
    names = {d.name for d in spec.dependencies["linux-64"]}
    assert {"python", "pip"} <= names and not names & {"pytorch", "torch", "ffmpeg"}
