"""The package works without the compiled extension, and says why the kernels are missing."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from fastpose import _ext


def run_python(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, env=full_env, timeout=300)


def test_import_and_reference_without_extension():
    proc = run_python("""
        import warnings, torch
        import fastpose
        from fastpose.ops import ssim, ssim_ref
        x = torch.rand(1, 3, 16, 16); y = torch.rand(1, 3, 16, 16)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            a = ssim(x, y); b = ssim(x, y)
        assert torch.equal(a, ssim_ref(x, y))
        fallbacks = [w for w in caught if "pure-PyTorch reference" in str(w.message)]
        assert len(fallbacks) == 1, [str(w.message) for w in caught]
        assert "FASTPOSE_NO_EXT" in str(fallbacks[0].message)
        try:
            ssim(x, y, impl="ext")
        except RuntimeError as e:
            print("EXT-ERROR:", e)
        """, FASTPOSE_NO_EXT="1")
    assert proc.returncode == 0, proc.stderr
    assert "EXT-ERROR: fastpose.ops.ssim(impl='ext') on cpu" in proc.stdout


def test_missing_module_message_says_how_to_fix(monkeypatch):
    import importlib

    real_import = importlib.import_module

    def fake_import(name, *a, **k):
        if name == "fastpose._C":
            raise ImportError("No module named 'fastpose._C'")
        return real_import(name, *a, **k)

    monkeypatch.setattr(_ext, "_loaded", None)
    monkeypatch.setattr(_ext, "_error", None)
    monkeypatch.setattr(importlib, "import_module", fake_import)
    assert _ext.load() is False
    assert "pip install --no-build-isolation" in _ext.error()
    ok, why = _ext.kernel_status("ssim", "cpu")
    assert not ok and "fastpose._C could not be imported" in why


def test_info_reports_build_and_dispatch():
    proc = run_python("import fastpose.info as i; i.main()")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "extension fastpose._C: loaded" in out
    assert "ssim | cpu | ext (compiled kernel)" in out
    cuda_built = _ext.build_info().get("cuda")
    assert ("CUDA kernels: yes" in out) == bool(cuda_built)
    if not cuda_built:
        assert "ssim | cuda | ref (pure PyTorch)" in out


def test_info_without_extension():
    proc = run_python("import fastpose.info as i; i.main()", FASTPOSE_NO_EXT="1")
    assert proc.returncode == 0, proc.stderr
    assert "extension fastpose._C: NOT available" in proc.stdout
    assert "ssim | cpu | ref (pure PyTorch)" in proc.stdout


def test_unknown_device_type_is_reported():
    ok, why = _ext.kernel_status("ssim", "mps")
    assert not ok and "no kernels for device type 'mps'" in why


@pytest.mark.parametrize("op", ["ssim"])
def test_registry_lists_op_with_reference(op):
    from fastpose.ops import OPS
    assert OPS[op].ref.__name__ == f"{op}_ref"
