"""Tiny models for the model tests (random tiny encoders, width 32), built from seed 0."""
import torch

from rvos.models import ModelConfig, RVOSModel, build_model

TEXTS = ["the camel on the left", "a red car"]


def tiny(**kw) -> RVOSModel:
    torch.manual_seed(0)
    return build_model(ModelConfig(vision="tiny", text="tiny", dim=32, **kw))
