"""Mirrors that answer, but wrongly: a captive portal (HTTP 200 and a login page for every path)
and a mirror whose file is not the one the lockfile pins. Both are the mirror's fault: the real
pip or uv install moves on to the next mirror, and the reason names what went wrong where."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from i2vkit.errors import InstallError
from i2vkit.mirrors.choose import choose, resolve
from i2vkit.mirrors.install import install
from tests.helpers.mirrors import VARIANT, catalogue_for, installed
from tests.helpers.servers import closed_port

LOCKED = ["--no-deps", "--require-hashes", "-r"]


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_captive_portal_is_left_for_the_next_mirror_and_named(
    tool, captive, stand_ins, venv, neutral_env
):
    """Both tools read the portal's page as an index without the package ("No solution found",
    "No matching distribution found"): the project page is then fetched and found not an index."""
    catalogue = catalogue_for({"captive": captive.url, "aliyun": stand_ins["urls"]["aliyun"]})
    plan = choose(catalogue, "captive")
    result = install(python_of(venv), ["alpha"], catalogue, plan, tool=tool, env=neutral_env)
    first, second = result.attempts
    assert (first.mirror, first.ok, first.mirror_fault) == ("captive", False, True)
    reason = first.reason or ""
    assert f"{captive.url}/simple/alpha/ is not a PEP 503 simple index" in reason, reason
    assert (second.mirror, second.ok) == ("aliyun", True)
    assert "switched pypi from captive to aliyun" in result.summary()
    assert {"alpha", "beta", "gamma"} <= installed(venv)


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_file_that_fails_the_locked_hash_is_named_and_the_next_mirror_tried(
    tool, tampered, alpha_lock, stand_ins, venv, neutral_env
):
    catalogue = catalogue_for({"tampered": tampered.url, "aliyun": stand_ins["urls"]["aliyun"]})
    plan = choose(catalogue, "tampered")
    result = install(python_of(venv), [*LOCKED, str(alpha_lock)], catalogue, plan, tool=tool,
                     env=neutral_env)  # fmt: skip
    first, second = result.attempts
    assert (first.mirror, first.ok, first.mirror_fault) == ("tampered", False, True)
    assert first.package == "alpha==1.0"
    assert (first.reason or "").startswith("hash mismatch: alpha==1.0 from tampered has sha256 ")
    assert "the lockfile pins sha256 " in (first.reason or "")
    assert (second.mirror, second.ok) == ("aliyun", True)
    assert result.files == {"alpha-1.0-py3-none-any.whl": "aliyun"}
    assert "alpha" in installed(venv)


def test_when_every_mirror_fails_the_error_names_each_and_why(
    tampered, captive, alpha_lock, venv, neutral_env
):
    urls = {"tampered": tampered.url, "captive": captive.url,
            "ustc": f"http://127.0.0.1:{closed_port()}"}  # fmt: skip
    catalogue = catalogue_for(urls)
    with pytest.raises(InstallError) as caught:
        install(python_of(venv), [*LOCKED, str(alpha_lock)], catalogue,
                choose(catalogue, "tampered"), tool="uv", env=neutral_env)  # fmt: skip
    attempts = caught.value.result.attempts
    assert [(a.mirror, a.mirror_fault) for a in attempts] == [(m, True) for m in urls]
    message = str(caught.value)
    for mirror, why in (
        ("tampered", "hash mismatch: alpha==1.0 from tampered"),
        ("captive", "is not a PEP 503 simple index"),
        ("ustc", "refused"),
    ):
        assert re.search(rf"pypi via {mirror}: failed after [\d.]+ s: [^;]*{why}", message, re.I), (
            mirror,
            message,
        )


def test_auto_leaves_out_a_mirror_the_probe_found_not_an_index(
    captive, stand_ins, venv, neutral_env
):
    catalogue = catalogue_for({"captive": captive.url, "aliyun": stand_ins["urls"]["aliyun"]})
    plan = resolve(catalogue, "auto")
    assert plan.chains["pypi"] == ("aliyun",)
    assert dict(plan.left_out["pypi"]) == {
        "captive": "not a PEP 503 simple index (no package links)"
    }
    assert any("captive" in note and "left out" in note for note in plan.notes), plan.notes
    seen = len(captive.paths)
    result = install(python_of(venv), ["alpha"], catalogue, plan, tool="uv", env=neutral_env)
    assert [(a.mirror, a.ok) for a in result.attempts] == [("aliyun", True)]
    assert captive.paths[seen:] == []  # never asked
    assert any("captive" in line and "left out" in line for line in result.summary())


def test_auto_keeps_portals_when_nothing_else_offers_the_kind(captive):
    """Leaving every mirror out would leave nothing to try (nor a URL to name): they stay."""
    plan = resolve(catalogue_for({"captive": captive.url}), "auto")
    assert plan.chains["pypi"] == ("captive",)
    assert "pypi" not in plan.left_out


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_a_flat_torch_page_takes_its_dependencies_from_a_pypi_mirror_that_answers(
    tool, captive, stand_ins, venv, neutral_env
):
    """The plan's PyPI mirror is a portal; torch comes from aliyun's flat page, which lists only
    torch: its dependency (beta) comes from the next PyPI mirror, not the portal (every torch
    mirror failed there in turn, each for the portal's page)."""
    urls = {"captive": captive.url, "aliyun": stand_ins["urls"]["aliyun"]}
    catalogue = catalogue_for(urls, stand_ins["torch"].url)
    plan = choose(catalogue, "captive", VARIANT)
    assert plan.chains["pypi"] == ("captive", "aliyun") and plan.chains["torch"] == ("aliyun",)
    result = install(python_of(venv), [f"torch==2.13.0+{VARIANT}"], catalogue, plan,
                     kind="torch", tool=tool, env=neutral_env)  # fmt: skip
    assert [(a.mirror, a.ok) for a in result.attempts] == [("aliyun", True)]
    assert result.files == {f"torch-2.13.0+{VARIANT}-py3-none-any.whl": "aliyun",
                            "beta-1.0-py3-none-any.whl": "aliyun"}  # fmt: skip
    assert {"torch", "beta"} <= installed(venv)
