"""Real `pip install` / `uv pip install` into fresh environments through loopback mirrors; what
was fetched from where is read from the servers' own logs, and failover is tested by stopping
a mirror in the middle of an install."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

from i2vkit.errors import InstallError
from i2vkit.mirrors.choose import choose, resolve
from i2vkit.mirrors.install import InstallResult, install
from tests.helpers.mirrors import VARIANT, catalogue_for, installed
from tests.helpers.servers import DelayProxy, PypiServer, wait_until

WHEELS = {f"{n}-1.0-py3-none-any.whl" for n in ("alpha", "beta", "gamma")}


def python_of(venv: Path) -> Path:
    return venv / "bin" / "python"


def test_auto_picks_the_fastest_and_pip_installs_through_it(loopback, stand_ins, venv, neutral_env):
    servers = stand_ins["servers"]
    before = {n: len(s.fetched()) for n, s in servers.items()}
    plan = resolve(loopback, "auto")
    assert plan.picks["pypi"].mirror == "aliyun"
    result = install(python_of(venv), ["alpha"], loopback, plan, env=neutral_env)
    assert [a.mirror for a in result.attempts] == ["aliyun"]
    assert set(servers["aliyun"].fetched()[before["aliyun"] :]) == WHEELS
    assert servers["tuna"].fetched()[before["tuna"] :] == []
    assert servers["default"].fetched()[before["default"] :] == []
    assert result.files == dict.fromkeys(WHEELS, "aliyun")
    assert {"alpha", "beta", "gamma"} <= installed(venv)


@pytest.mark.parametrize("tool", ["pip", "uv"])
@pytest.mark.parametrize("dead", ["ustc", "sjtu"])  # a closed port; a name that does not resolve
def test_a_dead_mirror_fails_over_and_says_so(tool, dead, stand_ins, venv, neutral_env):
    """pip with --retries 0 reports a dead index only as "No matching distribution found":
    the mirror itself is asked before that counts as the package's fault."""
    urls = {k: stand_ins["urls"][k] for k in (dead, "aliyun")}
    catalogue = catalogue_for(urls)
    aliyun = stand_ins["servers"]["aliyun"]
    before = len(aliyun.fetched())
    result = install(
        python_of(venv), ["alpha"], catalogue, choose(catalogue, dead), tool=tool, env=neutral_env
    )
    first, second = result.attempts
    assert (first.mirror, first.ok, first.mirror_fault) == (dead, False, True)
    assert "switched pypi from " + dead in " ".join(result.summary())
    expected = ("refused",) if dead == "ustc" else ("dns", "name or service not known")
    assert any(e in (first.reason or "").lower() for e in expected), first.reason
    assert (second.mirror, second.ok) == ("aliyun", True)
    assert set(aliyun.fetched()[before:]) == WHEELS
    assert result.files == dict.fromkeys(WHEELS, "aliyun")
    assert {"alpha", "beta", "gamma"} <= installed(venv)


@pytest.mark.parametrize("tool", ["pip", "uv"])
def test_mirror_stopped_mid_install_fails_over_with_the_switch_reported(
    tool, stand_ins, wheels, tmp_path, venv, neutral_env
):
    tuna = PypiServer(wheels, tmp_path / "tuna.log").wait()
    proxy = DelayProxy(tuna.port, 0.3)  # slow enough to stop it between two files
    try:
        catalogue = catalogue_for({"tuna": proxy.url, "aliyun": stand_ins["urls"]["aliyun"]})
        outcome: list[InstallResult | BaseException] = []

        def run() -> None:
            plan = choose(catalogue, "tuna")
            try:
                outcome.append(install(python_of(venv), ["alpha"], catalogue, plan, tool=tool,
                                       env=neutral_env))  # fmt: skip
            except BaseException as error:
                outcome.append(error)

        worker = threading.Thread(target=run)
        worker.start()
        assert wait_until(lambda: len(tuna.fetched()) >= 1, timeout=30), "tuna never served"
        proxy.stop()  # the mirror goes away: new connections are refused
        tuna.stop()
        worker.join(timeout=120)
    finally:
        proxy.stop()
        tuna.stop()
    result = outcome[0]
    assert isinstance(result, InstallResult), result
    failed, succeeded = result.attempts
    assert failed.mirror == "tuna" and not failed.ok and failed.mirror_fault
    assert succeeded.mirror == "aliyun" and succeeded.ok
    summary = result.summary()
    assert "switched pypi from tuna to aliyun" in summary
    assert any(line.startswith("pypi via tuna: failed") for line in summary)
    assert result.files == dict.fromkeys(WHEELS, "aliyun")
    assert 1 <= len(tuna.fetched()) < len(WHEELS)
    assert {"alpha", "beta", "gamma"} <= installed(venv)


def test_a_failure_that_is_not_the_network_does_not_hop_mirrors(loopback, venv, neutral_env):
    plan = choose(loopback, "aliyun")
    with pytest.raises(InstallError) as caught:
        install(python_of(venv), ["needs-missing"], loopback, plan, env=neutral_env)
    attempts = caught.value.result.attempts
    assert len(attempts) == 1 and not attempts[0].mirror_fault
    assert "no-such-project" in (attempts[0].reason or "")


def test_torch_comes_from_its_page_and_its_dependencies_from_the_pypi_mirror(
    stand_ins, venv, neutral_env
):
    """tuna has no torch: the plan falls back to aliyun's flat page for torch alone, while
    torch's dependency still comes from tuna's PyPI mirror."""
    urls = {k: stand_ins["urls"][k] for k in ("tuna", "aliyun")}
    catalogue = catalogue_for(urls, stand_ins["torch"].url)
    plan = choose(catalogue, "tuna", VARIANT)
    assert plan.picks["torch"].mirror == "aliyun" and plan.picks["torch"].note
    page = stand_ins["torch"]
    before = len(page.paths)
    result = install(python_of(venv), [f"torch==2.13.0+{VARIANT}"], catalogue, plan,
                     kind="torch", env=neutral_env)  # fmt: skip
    assert result.files == {
        f"torch-2.13.0+{VARIANT}-py3-none-any.whl": "aliyun",
        "beta-1.0-py3-none-any.whl": "tuna",
    }
    assert any(p.endswith(".whl") for p in page.paths[before:])
    assert {"torch", "beta"} <= installed(venv)


def test_install_refuses_a_chain_without_the_kind(loopback, venv):
    plan = choose(loopback, "tuna", "cu999")  # no mirror has that variant
    with pytest.raises(InstallError):
        install(python_of(venv), ["torch"], loopback, plan, kind="torch")
    assert sys.executable  # nothing was run: the chain was empty
