"""What machine a benchmark ran on: CPU model, ISA flags, cores, and a derived fp32 peak."""
from __future__ import annotations

import os
import platform
import re
from pathlib import Path


def cpu_info() -> dict:
    """CPU model, logical cores, ISA flags that matter for inference (AVX2, FMA, AVX-512, VNNI, AMX)."""
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    model = re.search(r"model name\s*:\s*(.+)", text)
    flags = set((re.search(r"flags\s*:\s*(.+)", text) or re.search(r"Features\s*:\s*(.+)", text) or
                 re.match("()", "")).group(1).split())
    mhz = [float(m) for m in re.findall(r"cpu MHz\s*:\s*([\d.]+)", text)]
    wanted = {"avx2": "avx2", "fma": "fma", "avx512f": "avx512f", "avx512_vnni": "avx512_vnni",
              "avx_vnni": "avx_vnni", "avx512_bf16": "avx512_bf16", "amx_bf16": "amx_bf16", "amx_int8": "amx_int8",
              "neon": "asimd"}
    return {
        "cpu": model.group(1).strip() if model else platform.processor() or platform.machine(),
        "cores": os.cpu_count() or 1,
        "isa": {name: flag in flags for name, flag in wanted.items()},
        "mhz": max(mhz) if mhz else None,
    }


def describe_machine(info: dict | None = None) -> str:
    """One line naming the CPU, its inference ISA flags and cores (and the GPU, if torch sees one)."""
    info = info or cpu_info()
    flags = ", ".join(name.upper().replace("_", "-") for name, on in info["isa"].items() if on) or "no SIMD flags read"
    gpu = ""
    try:
        import torch

        if torch.cuda.is_available():
            gpu = f", GPU {torch.cuda.get_device_name()}"
    except ImportError:
        pass
    return f"{info['cpu']}, {info['cores']} logical cores ({flags}){gpu}"


def peak_gflops(info: dict) -> tuple[float | None, str]:
    """cores x FMA lanes x 2 FLOPs x 2 FMA units x clock; returns (GFLOP/s, how it was derived)."""
    if not info["mhz"]:
        return None, "clock unknown"
    isa = info["isa"]
    lanes = 16 if isa["avx512f"] else 8 if isa["avx2"] else 4
    fma = 2 if isa["fma"] or isa["avx512f"] else 1
    per_cycle = lanes * 2 * fma
    peak = info["cores"] * per_cycle * info["mhz"] / 1000
    how = (f"{info['cores']} cores x {lanes} fp32 lanes x 2 (FMA) x {fma} FMA units x {info['mhz'] / 1000:.2f} GHz "
           f"= {peak:.0f} GFLOP/s (clock from /proc/cpuinfo; turbo/throttling not modelled)")
    return peak, how
