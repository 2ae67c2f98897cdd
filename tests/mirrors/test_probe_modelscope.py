"""The ModelScope kind of the probe against the ModelScope stand-in (tests/helpers/modelscope.py,
written from the client's source), a dead port and a captive-portal page."""

from __future__ import annotations

import json

import pytest

from i2vkit.mirrors.catalogue import from_data
from i2vkit.mirrors.choose import choose
from i2vkit.mirrors.probe import probe
from tests.helpers.modelscope import ModelScopeHub
from tests.helpers.servers import StaticServer, free_port

REPO = "i2vkit/probe-target"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory):
    model = tmp_path_factory.mktemp("repo")
    (model / "model_index.json").write_text(json.dumps({"_class_name": "WanImageToVideoPipeline"}))
    server = ModelScopeHub({REPO: model})
    yield server
    server.stop()


@pytest.fixture(scope="module")
def portal(tmp_path_factory: pytest.TempPathFactory):
    """Answers 200 with a login page wherever it is asked (a campus network's portal)."""
    root = tmp_path_factory.mktemp("portal")
    page = root / "api" / "v1" / "models" / "i2vkit" / "probe-target" / "repo" / "files"
    page.parent.mkdir(parents=True)
    page.write_text("<html><body>Please log in to the campus network</body></html>")
    server = StaticServer(root)
    yield server
    server.stop()


def test_the_probe_tells_modelscope_from_a_dead_port_and_a_portal(hub, portal):
    catalogue = from_data({
        "order": ["portal", "dead", "ms"],
        "probe": {"modelscope_repo": REPO},
        "mirror": {
            "portal": {"modelscope": {"url": portal.url}},
            "dead": {"modelscope": {"url": f"http://127.0.0.1:{free_port()}"}},
            "ms": {"modelscope": {"url": hub.url}},
        },
    })  # fmt: skip
    result = probe(catalogue, kinds=["modelscope"])
    by_mirror = {m.mirror: m for m in result.measurements}
    assert by_mirror["ms"].ok, by_mirror["ms"].reason
    assert any("/repo/files?Revision=master" in p for p in hub.requests)
    assert not by_mirror["dead"].ok and "refused" in by_mirror["dead"].reason
    assert not by_mirror["portal"].ok and "not a ModelScope API" in by_mirror["portal"].reason
    assert result.ranking()["modelscope"] == ["ms"]
    assert choose(catalogue, "auto", ranking=result.ranking()).url("modelscope") == hub.url
