"""Turn a MirrorPlan into the configuration each tool reads, scoped to the env i2vkit builds.

Every function returns text or data; only `write` touches the disk, atomically. The default
scope is the environment's prefix (pip reads `<prefix>/pip.conf`, conda `<prefix>/.condarc`,
uv is pointed at `<prefix>/uv.toml`); the user's own files are written only with scope "global".

Torch always has its own index, and nothing else may come from it: pip installs torch in a
separate step with that index only; uv marks it `explicit` so only packages pinned to it by
name (`[tool.uv.sources]`) can use it. A look-alike package on one index can then never
shadow the real one on the other (dependency confusion).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from i2vkit import files
from i2vkit.errors import ConfigError
from i2vkit.mirrors.catalogue import CondaEndpoint, TorchEndpoint
from i2vkit.mirrors.choose import MirrorPlan

CONDA_CUSTOM_CHANNELS = ("conda-forge", "pytorch")
DAEMON_JSON = Path("/etc/docker/daemon.json")


def _header(plan: MirrorPlan, comment: str = "#") -> str:
    return f"{comment} written by i2vkit (mirror: {plan.requested}); lockfiles keep upstream URLs\n"


def torch_index(plan: MirrorPlan) -> tuple[str, str]:
    """(url, layout) of torch's wheels for the plan's variant; layout 'simple' or 'find-links'."""
    endpoint = plan.picks["torch"].endpoint
    assert isinstance(endpoint, TorchEndpoint)
    return endpoint.for_variant(plan.variant), endpoint.layout


def pip_conf(plan: MirrorPlan) -> str:
    return f"{_header(plan)}[global]\nindex-url = {plan.url('pypi')}\n"


def pip_torch_args(plan: MirrorPlan) -> list[str]:
    """Index options for pip's separate torch step (the requirement itself is the caller's).

    A flat find-links page only lists torch wheels, so torch's dependencies come from the PyPI
    mirror; pin torch with its local tag (torch==2.13.0+cu126) so only the page can supply it."""
    url, layout = torch_index(plan)
    if layout == "simple":
        return ["--index-url", url]
    return ["--index-url", plan.url("pypi"), "--find-links", url]


def uv_index_name(plan: MirrorPlan) -> str:
    return f"pytorch-{plan.variant}"


def uv_toml(plan: MirrorPlan) -> str:
    text = (
        f"{_header(plan)}"
        f'[[index]]\nname = "{plan.picks["pypi"].mirror}"\nurl = "{plan.url("pypi")}"\n'
        "default = true\n"
    )
    if "torch" not in plan.picks:
        return text
    url, layout = torch_index(plan)
    flat = 'format = "flat"\n' if layout == "find-links" else ""
    return (
        text
        + f'\n[[index]]\nname = "{uv_index_name(plan)}"\nurl = "{url}"\n{flat}explicit = true\n'
    )


def uv_sources(plan: MirrorPlan) -> str:
    """The pyproject.toml table that lets torch (and only torch) use the explicit index."""
    return f'[tool.uv.sources]\ntorch = {{ index = "{uv_index_name(plan)}" }}\n'


def condarc(plan: MirrorPlan) -> str:
    endpoint = plan.picks["conda"].endpoint
    assert isinstance(endpoint, CondaEndpoint)
    lines = [_header(plan).rstrip("\n"), "default_channels:", f"  - {endpoint.url}"]
    lines += ["custom_channels:", *(f"  {c}: {endpoint.custom}" for c in CONDA_CUSTOM_CHANNELS)]
    # torch never comes from conda (the pytorch channel stopped at 2.5): see pip_torch_args.
    return "\n".join([*lines, "show_channel_urls: true", ""])


def hf_env(plan: MirrorPlan) -> dict[str, str]:
    """Set in the environment of i2vkit's own processes (huggingface_hub reads HF_ENDPOINT at
    import; the ModelScope client on its first call). A mirror of the Hub also gets
    HF_HUB_DISABLE_XET: Xet transfers go to the Hub's own storage, past the mirror."""
    env = {"HF_ENDPOINT": plan.url("hf")}
    if plan.picks["hf"].mirror != "default":
        env["HF_HUB_DISABLE_XET"] = "1"
    if "modelscope" in plan.picks:
        env["MODELSCOPE_ENDPOINT"] = plan.url("modelscope")
    return env


def docker_build_args(plan: MirrorPlan) -> dict[str, str]:
    url, layout = torch_index(plan)
    return {
        "PIP_INDEX_URL": plan.url("pypi"),
        "UV_DEFAULT_INDEX": plan.url("pypi"),
        "TORCH_INDEX_URL": url,
        "TORCH_INDEX_LAYOUT": layout,
        "HF_ENDPOINT": plan.url("hf"),
        "APT_MIRROR": plan.url("debian"),
    }


def registry_mirrors(plan: MirrorPlan) -> list[str]:
    # Docker Hub itself needs no entry: an empty list means "pull from the Hub".
    pick = plan.picks.get("docker")
    return [] if pick is None or pick.mirror == "default" else [pick.endpoint.url]


def daemon_json(plan: MirrorPlan, existing: Mapping[str, object] | None = None) -> str:
    """The daemon's JSON with `registry-mirrors` set, keeping every other key already there."""
    data = dict(existing or {})
    data["registry-mirrors"] = registry_mirrors(plan)
    return json.dumps(data, indent=2) + "\n"


def apt_sources(plan: MirrorPlan, distro: str, suite: str) -> str:
    """deb822 sources for an image (debian.sources / ubuntu.sources)."""
    url = plan.url(distro)
    keyring = f"/usr/share/keyrings/{distro}-archive-keyring.gpg"
    if distro == "debian":
        # Debian's security archive sits beside the main one on every catalogued mirror.
        suites = [(url, f"{suite} {suite}-updates"), (f"{url}-security", f"{suite}-security")]
    else:
        suites = [(url, f"{suite} {suite}-updates {suite}-security")]
    components = "main" if distro == "debian" else "main restricted universe"
    blocks = [
        f"Types: deb\nURIs: {u}\nSuites: {s}\nComponents: {components}\nSigned-By: {keyring}\n"
        for u, s in suites
    ]
    return _header(plan) + "\n".join(blocks)


@dataclass(frozen=True)
class FileChange:
    path: Path
    text: str
    what: str


def config_files(plan: MirrorPlan, prefix: Path | None, scope: str = "env") -> list[FileChange]:
    """The files to write: inside `prefix` (scope 'env'), or the user's own ('global').
    A tool whose kind no mirror offers gets no file."""
    if scope == "env":
        if prefix is None:
            raise ValueError("scope 'env' needs the environment's prefix")
        pip, uv, conda = prefix / "pip.conf", prefix / "uv.toml", prefix / ".condarc"
    elif scope == "global":
        config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
        pip, uv = config / "pip" / "pip.conf", config / "uv" / "uv.toml"
        conda = Path.home() / ".condarc"
    else:
        raise ValueError(f"scope must be 'env' or 'global', not {scope!r}")
    changes = []
    if "pypi" in plan.picks:
        changes += [FileChange(pip, pip_conf(plan), "pip"), FileChange(uv, uv_toml(plan), "uv")]
    if "conda" in plan.picks:
        changes.append(FileChange(conda, condarc(plan), "conda"))
    if scope == "global":
        merged = daemon_json(plan, _read_json(DAEMON_JSON))
        changes.append(FileChange(DAEMON_JSON, merged, "docker"))
    return changes


def _read_json(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise ConfigError(f"cannot read {path} to keep its other settings: {error}") from error
    if not isinstance(data, dict):
        raise ConfigError(f"{path} is not a JSON object; fix it by hand first")
    return data


def write(changes: list[FileChange]) -> list[Path]:
    for change in changes:
        files.write_text(change.path, change.text)
    return [c.path for c in changes]


def show(plan: MirrorPlan, prefix: str = "<env>") -> dict[str, str]:
    """Every configuration the plan would produce, titled by where it goes. Kinds the catalogue
    offers nowhere are left out."""
    env, has = Path(prefix), plan.picks.__contains__
    sections: dict[str, str] = {}
    if has("pypi"):
        sections[f"pip: {env / 'pip.conf'}"] = pip_conf(plan)
    if has("pypi") and has("torch"):
        step = "pip: torch step (pip install <these> torch==<version>+<variant>)"
        sections[step] = " ".join(pip_torch_args(plan)) + "\n"
        sections[f"uv: {env / 'uv.toml'}"] = uv_toml(plan)
        sections["uv: the project's pyproject.toml"] = uv_sources(plan)
    if has("conda"):
        sections[f"conda: {env / '.condarc'}"] = condarc(plan)
    if has("hf"):
        sections["hf: environment of i2vkit's processes"] = _env_text(hf_env(plan))
    if all(map(has, ("pypi", "torch", "hf", "debian"))):
        sections["docker: build args"] = _env_text(docker_build_args(plan))
    sections[f"docker: {DAEMON_JSON} (with --global)"] = daemon_json(plan)
    for distro, suite in (("debian", "bookworm"), ("ubuntu", "noble")):
        if has(distro):
            where = f"apt: /etc/apt/sources.list.d/{distro}.sources (images)"
            sections[where] = apt_sources(plan, distro, suite)
    return sections


def _env_text(values: Mapping[str, str]) -> str:
    return "".join(f"{k}={v}\n" for k, v in values.items())
