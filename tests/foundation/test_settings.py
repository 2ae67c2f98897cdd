from pathlib import Path

import pytest

from i2vkit.errors import ConfigError
from i2vkit.settings import ENVIRONMENT, Settings, resolve


def test_precedence_flag_config_env_default(tmp_path):
    env = {"I2VKIT_MODEL": "svd", "HF_HOME": str(tmp_path / "hf")}
    assert resolve({}, {}, {}).model == "i2vgen-xl"
    assert resolve({}, {}, env).model == "svd"
    assert resolve({}, {"model": "svd-xt"}, env).model == "svd-xt"
    assert resolve({"model": "demo"}, {"model": "svd-xt"}, env).model == "demo"
    assert resolve({"model": None}, {}, env).model == "svd"  # None means "flag not given"


def test_hub_cache_follows_huggingface_precedence(tmp_path):
    assert resolve(environ={"HF_HUB_CACHE": "/a", "HF_HOME": "/b"}).hub_cache == Path("/a")
    assert resolve(environ={"HF_HOME": "/b"}).hub_cache == Path("/b/hub")
    assert resolve(environ={"XDG_CACHE_HOME": "/c"}).hub_cache == Path("/c/huggingface/hub")


def test_unknown_setting_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError) as error:
        resolve({}, {"modle": "demo"}, {})
    assert "'modle' is unknown" in str(error.value)
    assert "model" in str(error.value)


def test_settings_are_frozen_and_every_field_has_a_documented_variable():
    settings = resolve(environ={})
    with pytest.raises(AttributeError):
        settings.model = "x"  # type: ignore[misc]
    documented = {v.setting for v in ENVIRONMENT}
    assert set(Settings.__dataclass_fields__) <= documented
    assert all(v.doc for v in ENVIRONMENT)


def test_the_readme_documents_every_environment_variable():
    from tests.helpers.invoke import ROOT

    readme = (ROOT / "README.md").read_text()
    missing = [v.name for v in ENVIRONMENT if f"| `{v.name}` |" not in readme]
    assert not missing, f"README.md's Settings table lacks {missing}"
