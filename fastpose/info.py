"""``python -m fastpose.info``: versions, how the extension was built, and which
implementation ``impl="auto"`` picks for every op on every device type."""

from __future__ import annotations

import platform

import torch

from fastpose import __version__, _ext
from fastpose.ops import OPS


def op_table() -> list[tuple[str, str, str]]:
    """Rows (op, device type, what impl="auto" uses there and why)."""
    rows = []
    for name, info in sorted(OPS.items()):
        for device in ("cpu", "cuda"):
            statuses = [_ext.kernel_status(k, device) for k in info.kernels]
            missing = [why for ok, why in statuses if not ok]
            if not _ext.load():
                missing = ["the extension is not loaded (see above)"]
            what = "ext (compiled kernel)" if not missing else f"ref (pure PyTorch): {missing[0]}"
            if not missing and device == "cuda" and not torch.cuda.is_available():
                what += "; no CUDA device visible now"
            rows.append((name, device, what))
    return rows


def report() -> str:
    lines = [
        f"fastpose {__version__}",
        f"python {platform.python_version()} on {platform.machine()}",
        f"torch {torch.__version__}, built with CUDA {torch.version.cuda}",
        f"CUDA available: {torch.cuda.is_available()}"
        + (f" ({torch.cuda.device_count()} x {torch.cuda.get_device_name(0)})"
           if torch.cuda.is_available() else ""),
        f"CPU threads (torch): {torch.get_num_threads()}",
    ]
    if _ext.load():
        info = _ext.build_info()
        lines.append("extension fastpose._C: loaded")
        lines.append(f"  built against torch {info.get('torch_version')}")
        lines.append(f"  CPU kernels: yes ({info.get('cxx_flags')})")
        if info.get("cuda"):
            lines.append(f"  CUDA kernels: yes (CUDA {info.get('cuda_version')}, "
                         f"architectures {info.get('cuda_archs')})")
        else:
            lines.append("  CUDA kernels: no")
    else:
        lines.append(f"extension fastpose._C: NOT available: {_ext.error()}")
    lines.append("")
    lines.append("op | device | impl='auto' uses")
    lines.extend(f"{op} | {dev} | {what}" for op, dev, what in op_table())
    return "\n".join(lines)


def main() -> None:
    print(report())


if __name__ == "__main__":
    main()
