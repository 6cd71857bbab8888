"""rvos: referring video object segmentation from cheap annotation."""
import os as _os

# On a small shared CPU, OpenMP's default active spin-wait makes torch's intra-op threads collapse whenever another
# busy process or thread (a data loader, the evaluator's PNG decoding, a second job) shares the cores: measured on the
# 2-core machine, EfficientNet-Lite0 at 192x320 took 2355 ms a frame with 2 threads under contention vs 54 ms with
# passive waiting. Set before torch loads its OpenMP runtime; a value the user set is kept.
_os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
