"""Putting a loaded pipeline where the memory planner's strategy says (i2vkit/planner.py), with
diffusers' own hooks: layerwise casting for fp8 storage, group offloading (leaf level, CUDA
streams) for the denoisers and, in the leanest strategy, the encoders (diffusers'
`apply_group_offloading` takes any torch module, transformers' encoders included, as its Wan
memory example does), model CPU offload, VAE tiling. The pipeline arrives on the CPU,
straight from `from_pretrained`; this is the one place that moves it to the device.
"""

from __future__ import annotations

from typing import Any

from i2vkit.planner import DENOISERS, ENCODERS, Strategy

FP8 = "float8_e4m3fn"


def denoisers(pipe: Any) -> dict[str, Any]:
    """The pipeline's denoising models (a UNet, a transformer, or Wan 2.2's two experts)."""
    return {n: getattr(pipe, n) for n in DENOISERS if getattr(pipe, n, None) is not None}


def apply(pipe: Any, plan: Strategy, device: str, compute: Any, tiling: bool = False) -> None:
    """Place `pipe` on `device` under `plan`; `compute` is the torch dtype the job runs in;
    `tiling`: the VAE is tiled whatever the plan (the model's catalogue row says so)."""
    import torch

    cuda = device.startswith("cuda")
    if plan.fp8:
        for model in denoisers(pipe).values():
            model.enable_layerwise_casting(storage_dtype=getattr(torch, FP8), compute_dtype=compute)
    if plan.model_offload and cuda:
        pipe.enable_model_cpu_offload(device=device)
    elif plan.group_offload and cuda:
        from diffusers.hooks import apply_group_offloading

        offloaded = denoisers(pipe)
        if plan.encoders_offload:
            offloaded |= {
                n: getattr(pipe, n) for n in ENCODERS if getattr(pipe, n, None) is not None
            }
        for model in offloaded.values():
            apply_group_offloading(
                model,
                onload_device=torch.device(device),
                offload_type="leaf_level",
                use_stream=True,
            )
        for name, part in pipe.components.items():
            if name not in offloaded and isinstance(part, torch.nn.Module):
                part.to(device)
    else:
        pipe.to(device)
    if (plan.vae_tiling or tiling) and hasattr(pipe.vae, "enable_tiling"):
        pipe.vae.enable_tiling()


def weight_bytes(pipe: Any) -> dict[str, int]:
    """Bytes of weights per component as they are stored now (fp8 storage shows here)."""
    out = {}
    for name, part in pipe.components.items():
        if hasattr(part, "parameters"):
            out[name] = sum(p.numel() * p.element_size() for p in part.parameters())
    return out
