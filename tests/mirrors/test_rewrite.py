"""One lockfile serves every mirror: canonical URLs in, the chosen mirror's URLs out."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from i2vkit.mirrors.catalogue import from_data, load
from i2vkit.mirrors.choose import choose
from i2vkit.mirrors.rewrite import mirror_of, rewrite_url, rules, to_canonical, to_mirror
from tests.helpers.mirrors import installed

LOCK = """\
package:
- name: tzdata
  url: https://conda.anaconda.org/conda-forge/noarch/tzdata-2024a-h0c530f3_0.conda
  hash: {sha256: 0000}
- name: openssl
  url: https://repo.anaconda.com/pkgs/main/linux-64/openssl-3.0.13-h7f8727e_0.conda
[[package]]
name = "alpha"
source = { registry = "https://pypi.org/simple" }
wheels = [{ url = "https://files.pythonhosted.org/packages/aa/bb/alpha-1.0-py3-none-any.whl" }]
torch @ https://download.pytorch.org/whl/cu126/torch-2.13.0%2Bcu126-cp311-cp311-linux_x86_64.whl
https://example.org/untouched/file.whl
"""


def test_lockfile_round_trips_through_a_mirror():
    catalogue = load()
    pairs = rules(catalogue, choose(catalogue, "tuna", "cu126"))
    mirrored = to_mirror(LOCK, pairs)
    assert (
        "https://mirrors.tuna.tsinghua.edu.cn/anaconda/cloud/conda-forge/noarch/tzdata" in mirrored
    )
    assert "https://mirrors.tuna.tsinghua.edu.cn/anaconda/pkgs/main/linux-64/openssl" in mirrored
    assert 'registry = "https://pypi.tuna.tsinghua.edu.cn/simple"' in mirrored
    assert "https://pypi.tuna.tsinghua.edu.cn/packages/aa/bb/alpha-1.0" in mirrored
    assert "https://mirrors.aliyun.com/pytorch-wheels/cu126/torch-2.13.0%2Bcu126" in mirrored
    assert "https://example.org/untouched/file.whl" in mirrored
    assert "{sha256: 0000}" in mirrored
    assert to_canonical(mirrored, pairs) == LOCK


def test_the_default_mirror_changes_nothing():
    catalogue = load()
    assert to_mirror(LOCK, rules(catalogue, choose(catalogue, "default"))) == LOCK


def test_prefix_must_end_at_a_path_boundary():
    pairs = [("https://pypi.org/simple", "https://m.example/simple")]
    assert rewrite_url("https://pypi.org/simplex/a", pairs) == "https://pypi.org/simplex/a"
    assert rewrite_url("https://pypi.org/simple/a/", pairs) == "https://m.example/simple/a/"


def test_mirror_of_names_the_mirror_a_file_came_from():
    catalogue = load()
    assert mirror_of("https://pypi.tuna.tsinghua.edu.cn/packages/x.whl", catalogue) == "tuna"
    assert mirror_of("https://mirrors.aliyun.com/pytorch-wheels/cu126/t.whl", catalogue) == "aliyun"
    assert mirror_of("https://elsewhere.example/x.whl", catalogue) is None


def test_a_canonical_requirement_installs_from_the_loopback_mirror(stand_ins, venv, neutral_env):
    """A locked requirement with an upstream file URL, rewritten, is fetched by a real pip
    from the mirror (and pip checks the locked hash against what the mirror served)."""
    aliyun = stand_ins["servers"]["aliyun"]
    mirror = {
        "default": {"pypi": {"url": "https://pypi.org/simple",
                             "files": "https://files.pythonhosted.org/packages"}},
        "aliyun": {"pypi": {"url": f"{aliyun.url}/simple", "files": f"{aliyun.url}/packages"}},
    }  # fmt: skip
    catalogue = from_data({"order": ["aliyun", "default"], "mirror": mirror})
    wheel = aliyun.folder / "beta-1.0-py3-none-any.whl"
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    locked = f"beta @ https://files.pythonhosted.org/packages/{wheel.name} --hash=sha256:{digest}\n"
    requirements = venv.parent / "requirements.txt"
    requirements.write_text(to_mirror(locked, rules(catalogue, choose(catalogue, "aliyun"))))
    before = len(aliyun.fetched())
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", venv / "bin" / "python", "install", "-q",
         "--no-index", "--no-deps", "-r", requirements],
        env=neutral_env, check=True, timeout=120,
    )  # fmt: skip
    assert aliyun.fetched()[before:] == [wheel.name]
    assert "beta" in installed(venv)
