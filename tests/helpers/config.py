"""invoke configuration files for the tests' subprocesses (INVOKE_RUNTIME_CONFIG)."""

from __future__ import annotations

from pathlib import Path


def invoke_config(path: Path, pypi_url: str, torch_url: str | None, hf_url: str | None,
                  modelscope_url: str | None = None) -> Path:  # fmt: skip
    """An invoke runtime config (INVOKE_RUNTIME_CONFIG) naming the stand-ins mirror `local`."""
    lines = ["mirrors:", "  local:", f"    pypi: {{url: '{pypi_url}/simple'}}"]
    if torch_url:
        lines.append(f"    torch: {{url: '{torch_url}/{{variant}}', layout: find-links, "
                     "variants: [cpu]}")  # fmt: skip
    if hf_url:
        lines.append(f"    hf: {{url: '{hf_url}'}}")
    if modelscope_url:
        lines.append(f"    modelscope: {{url: '{modelscope_url}'}}")
    path.write_text("\n".join(lines) + "\n")
    return path
