"""rvos.models: encoders, SimRVOS fusion/FPN/heads, build_model()."""
from rvos.models.build import build_model
from rvos.models.config import ModelConfig
from rvos.models.output import RVOSOutput
from rvos.models.rvos_model import RVOSModel
from rvos.models.text import TextFeatures

__all__ = ["build_model", "ModelConfig", "RVOSOutput", "RVOSModel", "TextFeatures"]
