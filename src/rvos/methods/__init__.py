"""rvos.methods: one training strategy per paper, each wrapping the model and its losses (see DESIGN.md)."""
from rvos.methods.simrvos import SimRVOS, SimRVOSConfig

__all__ = ["SimRVOS", "SimRVOSConfig"]
