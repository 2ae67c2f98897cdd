"""The catalogue as data: what it offers, what it refuses, and how a missing kind falls back."""

from __future__ import annotations

import pytest

from i2vkit.errors import ConfigError, UnknownNameError
from i2vkit.mirrors.catalogue import KINDS, TorchEndpoint, check_url, load
from i2vkit.mirrors.choose import choose


def test_every_offered_url_has_a_source_and_nothing_gone_is_offered():
    catalogue = load()
    assert {"tuna", "aliyun", "ustc", "sjtu", "default"} <= set(catalogue.mirror)
    for name, mirror in catalogue.mirror.items():
        for kind in KINDS:
            endpoint = mirror.endpoint(kind)
            if endpoint is not None:
                assert endpoint.source.startswith("https://"), (name, kind)
                assert catalogue.gone_for(name, kind) is None
    default = catalogue.mirror["default"]
    assert all(default.endpoint(k) is not None for k in KINDS)


def test_torch_layouts_differ_between_official_and_aliyun():
    catalogue = load()
    official, aliyun = catalogue.mirror["default"].torch, catalogue.mirror["aliyun"].torch
    assert isinstance(official, TorchEndpoint) and isinstance(aliyun, TorchEndpoint)
    assert official.layout == "simple" and aliyun.layout == "find-links"
    assert official.for_variant("cu130") == "https://download.pytorch.org/whl/cu130"


def test_closed_docker_hub_mirrors_are_recorded_and_never_picked():
    catalogue = load()
    for name in ("ustc", "sjtu", "tuna"):
        plan = choose(catalogue, name)
        assert plan.picks["docker"].mirror == "default"
        assert "using default" in (plan.picks["docker"].note or "")
    assert "June 2024" in (choose(catalogue, "ustc").picks["docker"].note or "")


def test_tuna_has_no_hf_so_it_falls_back_and_says_so():
    plan = choose(load(), "tuna", "cu126")
    assert plan.picks["pypi"].mirror == "tuna" and plan.picks["pypi"].note is None
    assert plan.picks["hf"].mirror == "hf-mirror"
    assert "no Hugging Face mirror" in (plan.picks["hf"].note or "")
    assert plan.chains["pypi"][0] == "tuna" and "default" in plan.chains["pypi"]


def test_a_variant_the_mirror_lacks_falls_back():
    plan = choose(load(), "aliyun", "cu999")
    assert "torch" not in plan.picks and plan.chains["torch"] == ()


def test_unknown_mirror_lists_the_known_ones():
    with pytest.raises(UnknownNameError) as caught:
        choose(load(), "tuan")
    message = str(caught.value)
    assert "'tuan'" in message and "tuna" in message and "auto" in message
    assert isinstance(caught.value, KeyError)


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://pypi.corp.example/simple", "only on loopback"),
        ("ftp://pypi.corp.example/simple", "not an http(s) URL"),
        ("https:///simple", "not an http(s) URL with a host"),
        ("https://pypi.corp.example:99999/simple", "malformed"),
        ("https://pypi corp/simple", "whitespace"),
    ],
)
def test_bad_custom_urls_are_refused_with_the_reason(url, why):
    with pytest.raises(ConfigError) as caught:
        load(custom={"corp": {"pypi": {"url": url}}})
    assert why in str(caught.value) and "corp" in str(caught.value)


def test_custom_mirror_over_https_or_loopback_is_added_first():
    catalogue = load(
        custom={
            "corp": {"pypi": {"url": "https://pypi.corp.example/simple"}},
            "local": {"hf": {"url": "http://127.0.0.1:8090"}},
        }
    )
    assert catalogue.order[:2] == ("corp", "local")
    plan = choose(catalogue, "corp")
    assert plan.url("pypi") == "https://pypi.corp.example/simple"
    assert plan.picks["hf"].mirror == "local"  # next in order that offers hf


def test_custom_mirror_with_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="pypii"):
        load(custom={"corp": {"pypii": {"url": "https://x.example/simple"}}})


def test_torch_url_needs_its_variant_placeholder():
    with pytest.raises(ConfigError, match="variant"):
        load(custom={"corp": {"torch": {"url": "https://x.example/whl", "variants": ["cpu"]}}})


def test_apt_may_use_plain_http_but_nothing_else_may():
    assert check_url("http://deb.debian.org/debian", "debian") is None
    assert check_url("http://[::1]:8080/simple", "pypi") is None
    assert check_url("http://localhost:8080/simple", "pypi") is None
    assert check_url("http://10.0.0.1/simple", "pypi") is not None
