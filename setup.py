"""Build script for fastpose's C++/CUDA kernels.

Always builds the CPU kernels. Adds the CUDA kernels when torch is a CUDA build
and nvcc is found, or when forced. Environment variables:

  FASTPOSE_CUDA=1|0     force (1) or disable (0) the CUDA kernels; unset: auto-detect
  TORCH_CUDA_ARCH_LIST  GPU architectures to compile for, e.g. "8.0;9.0+PTX"
                        (default: the visible GPUs, or torch's own list without one)
  FASTPOSE_CPU_ARCH     -march value for the CPU kernels (default "native"; "" = compiler default,
                        use that when building a wheel for other machines)
  FASTPOSE_DEBUG=1      compile with -O0 -g
  MAX_JOBS              parallel compile jobs (ninja)

Install with `pip install --no-build-isolation .` so the build links the torch you run.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import sys

from setuptools import setup

# torch finds the CUDA toolkit through `which nvcc` before /usr/local/cuda; a lone nvcc on
# PATH (e.g. /usr/local/bin/nvcc) would then hide the toolkit's lib64/libcudart.
if "CUDA_HOME" not in os.environ and "CUDA_PATH" not in os.environ and os.path.exists(
        "/usr/local/cuda/bin/nvcc"):
    os.environ["CUDA_HOME"] = "/usr/local/cuda"

try:
    import torch
    from torch.utils import cpp_extension
except ImportError:  # pragma: no cover - message for users
    sys.exit(
        "fastpose: torch must be installed before building fastpose, and pip must not isolate the "
        "build.\n  pip install torch && pip install --no-build-isolation ."
    )

ROOT = os.path.dirname(os.path.abspath(__file__))


def log(msg: str) -> None:
    print(f"[fastpose setup] {msg}", flush=True)


def env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def nvcc_version() -> str | None:
    """Release of the nvcc that cpp_extension will use (CUDA_HOME/bin/nvcc), or None."""
    if cpp_extension.CUDA_HOME is None:
        return None
    nvcc = os.path.join(cpp_extension.CUDA_HOME, "bin", "nvcc")
    try:
        out = subprocess.check_output([nvcc, "--version"], text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    match = re.search(r"release (\d+\.\d+)", out)
    return match.group(1) if match else None


def decide_cuda() -> bool:
    forced = env_flag("FASTPOSE_CUDA")
    nvcc = nvcc_version()
    log(f"torch {torch.__version__}, torch CUDA {torch.version.cuda}, nvcc {nvcc}, "
        f"CUDA_HOME {cpp_extension.CUDA_HOME}, FASTPOSE_CUDA={os.environ.get('FASTPOSE_CUDA', '')!r}")
    if forced is False:
        log("CUDA kernels: disabled by FASTPOSE_CUDA=0")
        return False
    if torch.version.cuda is None:
        if forced:
            sys.exit("fastpose: FASTPOSE_CUDA=1 but this torch is a CPU-only build "
                     f"({torch.__version__}); install a CUDA build of torch or unset FASTPOSE_CUDA.")
        log("CUDA kernels: skipped (torch is a CPU-only build)")
        return False
    if nvcc is None:
        if forced:
            sys.exit("fastpose: FASTPOSE_CUDA=1 but nvcc was not found; set CUDA_HOME to your CUDA "
                     "toolkit (the folder containing bin/nvcc).")
        log("CUDA kernels: skipped (nvcc not found; set CUDA_HOME to build them)")
        return False
    if nvcc.split(".")[0] != torch.version.cuda.split(".")[0]:
        sys.exit(
            f"fastpose: nvcc is CUDA {nvcc} but torch was built with CUDA {torch.version.cuda}. "
            "torch refuses to compile extensions across CUDA major versions. Point CUDA_HOME at a "
            f"CUDA {torch.version.cuda.split('.')[0]}.x toolkit, install a torch built for CUDA "
            f"{nvcc.split('.')[0]}, or build without CUDA kernels: FASTPOSE_CUDA=0.")
    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and torch.cuda.device_count() == 0:
        # cpp_extension derives the list from the visible GPUs and fails without one.
        archs = sorted({a.split("_")[1] for a in torch.cuda.get_arch_list() if a.startswith("sm_")},
                       key=int)
        os.environ["TORCH_CUDA_ARCH_LIST"] = ";".join(f"{a[:-1]}.{a[-1]}" for a in archs)
        log("no GPU visible and TORCH_CUDA_ARCH_LIST unset: compiling for torch's own "
            f"architectures {os.environ['TORCH_CUDA_ARCH_LIST']} (set it to build fewer)")
    log(f"CUDA kernels: building for TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '(visible GPUs)')}")
    return True


def extensions() -> list:
    with_cuda = decide_cuda()
    debug = env_flag("FASTPOSE_DEBUG") is True
    march = os.environ.get("FASTPOSE_CPU_ARCH", "native").strip()
    cxx = ["-O0", "-g"] if debug else ["-O3"]
    # at::parallel_for is OpenMP in torch's CPU builds and runs serially without -fopenmp.
    cxx += ["-fvisibility=hidden", "-fopenmp"]
    if march and sys.platform != "win32":
        cxx.append(f"-march={march}")
    nvcc = ["-O0", "-g", "-G"] if debug else ["-O3"]
    nvcc += ["--expt-relaxed-constexpr"]
    sources = ["csrc/fastpose.cpp"] + sorted(glob.glob("csrc/cpu/*.cpp"))
    macros = [
        ("FASTPOSE_TORCH_VERSION", f'"{torch.__version__}"'),
        ("FASTPOSE_CXX_FLAGS", f'"{" ".join(cxx)}"'),
    ]
    log(f"CPU kernels: building with {' '.join(cxx)}")
    if with_cuda:
        sources += sorted(glob.glob("csrc/cuda/*.cu"))
        macros += [
            ("FASTPOSE_WITH_CUDA", None),
            ("FASTPOSE_CUDA_VERSION", f'"{torch.version.cuda}"'),
            ("FASTPOSE_CUDA_ARCHS", f'"{os.environ.get("TORCH_CUDA_ARCH_LIST", "visible GPUs")}"'),
        ]
        ext = cpp_extension.CUDAExtension
        extra = {"cxx": cxx, "nvcc": nvcc}
    else:
        ext = cpp_extension.CppExtension
        extra = {"cxx": cxx}
    return [ext("fastpose._C", sources, define_macros=macros, extra_compile_args=extra,
                extra_link_args=["-fopenmp"], include_dirs=[os.path.join(ROOT, "csrc")])]


setup(
    ext_modules=extensions(),
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(
        use_ninja=os.environ.get("FASTPOSE_NO_NINJA") is None)},
)
