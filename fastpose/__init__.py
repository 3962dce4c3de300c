"""fastpose: pose-guided person image generation on fused C++/CUDA kernels.

Importing fastpose never requires the compiled extension: the kernels load
lazily on first use, and every op has a pure-PyTorch reference (``impl="ref"``).
"""

from fastpose import ops

__version__ = "0.1.0"

__all__ = ["ops", "__version__"]
