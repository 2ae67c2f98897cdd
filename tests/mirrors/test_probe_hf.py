"""The Hugging Face kind of the probe against a real Hub-protocol server (olah), a dead port and
a server that answers with a page that is not the Hub API."""

from __future__ import annotations

import json

import pytest

from i2vkit.mirrors.catalogue import from_data
from i2vkit.mirrors.choose import choose
from i2vkit.mirrors.probe import probe
from tests.helpers.olah import OlahHub
from tests.helpers.servers import StaticServer, free_port

REPO = "i2vkit/probe-target"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    model = tmp_path_factory.mktemp("repo")
    (model / "model_index.json").write_text(json.dumps({"_class_name": "I2VGenXLPipeline"}))
    server = OlahHub(tmp_path_factory.mktemp("olah"), {REPO: model})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("portal")
    page = root / "api" / "models" / "i2vkit" / "probe-target" / "revision" / "main"
    page.parent.mkdir(parents=True)
    page.write_text("<html><body>Please log in to the campus network</body></html>")
    server = StaticServer(root)
    yield server
    server.stop()


def test_the_probe_tells_a_hub_from_a_dead_port_and_a_portal(hub, portal):
    catalogue = from_data({
        "order": ["portal", "dead", "olah"],
        "probe": {"hf_repo": REPO},
        "mirror": {
            "portal": {"hf": {"url": portal.url}},
            "dead": {"hf": {"url": f"http://127.0.0.1:{free_port()}"}},
            "olah": {"hf": {"url": hub.url}},
        },
    })  # fmt: skip
    result = probe(catalogue, kinds=["hf"])
    by_mirror = {m.mirror: m for m in result.measurements}
    assert by_mirror["olah"].ok, by_mirror["olah"].reason
    assert not by_mirror["dead"].ok and "refused" in by_mirror["dead"].reason
    assert not by_mirror["portal"].ok and "not a Hugging Face Hub API" in by_mirror["portal"].reason
    assert result.ranking()["hf"] == ["olah"]
    plan = choose(catalogue, "auto", ranking=result.ranking())
    assert plan.url("hf") == hub.url
