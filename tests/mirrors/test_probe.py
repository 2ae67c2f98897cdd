"""Probing real loopback servers: dead ones are reported with their reason, the hung one is cut
off at the deadline, the fastest mirror wins, a page that is not an index is caught. (How long a
probe takes is measured by benchmarks/probe_wall.py, not asserted here.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from i2vkit.cli.mirrors import run
from i2vkit.mirrors.choose import choose, resolve
from i2vkit.mirrors.probe import ProbeResult, probe
from tests.helpers.mirrors import SLOW_S, catalogue_for


@pytest.fixture(scope="module")
def probed(loopback) -> ProbeResult:
    """One probe of the stand-ins (its deadline is spent waiting on the hung one), shared."""
    return probe(loopback, kinds=["pypi", "torch"])


def test_probe_reports_each_dead_mirror_with_its_reason(probed):
    result = probed
    by_mirror = {m.mirror: m for m in result.measurements if m.kind == "pypi"}
    assert by_mirror["ustc"].reason == "connection refused"
    assert by_mirror["sjtu"].reason == "DNS: the name does not resolve"
    assert "no answer within" in (by_mirror["hung"].reason or "")  # cut off at the deadline
    assert "not a PEP 503 simple index" in (by_mirror["portal"].reason or "")
    for name in ("tuna", "aliyun", "default"):
        assert by_mirror[name].ok, by_mirror[name]
    assert by_mirror["tuna"].first_byte_s >= SLOW_S  # its proxy waits that long: a lower bound


def test_fastest_mirror_wins_per_kind_and_auto_uses_it(loopback, probed):
    result = probed
    assert result.ranking()["pypi"] == ["aliyun", "default", "tuna"]
    winners = result.winners()
    assert winners["pypi"] is not None and winners["pypi"].mirror == "aliyun"
    assert winners["torch"] is not None and winners["torch"].mirror == "aliyun"
    plan = choose(loopback, "auto", ranking=result.ranking())
    assert plan.picks["pypi"].mirror == "aliyun"
    # Failover order: the answering mirrors fastest first, then the rest.
    assert plan.chains["pypi"][:3] == ("aliyun", "default", "tuna")


def test_torch_find_links_page_is_accepted_and_a_portal_is_not(stand_ins, portal):
    urls = {"aliyun": stand_ins["urls"]["aliyun"]}
    good = probe(catalogue_for(urls, stand_ins["torch"].url), kinds=["torch"])
    assert [m.ok for m in good.measurements] == [True]
    bad = probe(catalogue_for(urls, portal.url), kinds=["torch"])
    assert "not a wheel index" in (bad.measurements[0].reason or "")


def test_auto_with_nothing_answering_falls_back_and_says_so(stand_ins):
    dead = {k: stand_ins["urls"][k] for k in ("ustc", "sjtu", "portal")}
    plan = resolve(catalogue_for(dead), "auto")
    assert plan.picks["pypi"].mirror == "ustc"
    assert "no mirror answered for pypi" in (plan.picks["pypi"].note or "")


def test_probe_json_has_winners_and_reasons(loopback, capsys):
    data = run(loopback, probe_now=True, as_json=True)
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(data))
    assert printed["winners"]["pypi"] == "aliyun"
    reasons = {m["mirror"]: m["reason"] for m in printed["measurements"] if m["kind"] == "pypi"}
    assert reasons["ustc"] == "connection refused"


def test_real_catalogue_probe_in_a_fresh_interpreter_reports_every_mirror():
    """On this machine every outside mirror is unreachable (or, for the few hosts the test bed
    allows, answers); the table comes back either way, each mirror with a result."""
    done = subprocess.run(
        [sys.executable, "-m", "i2vkit", "mirrors", "--probe"], capture_output=True, text=True,
        timeout=30,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "probed in" in done.stdout
    for name in ("tuna", "aliyun", "ustc", "sjtu", "hf-mirror", "default"):
        assert name in done.stdout, name
