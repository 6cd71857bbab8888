"""ObjectRVOSModel (`model.head="objects"`): segment every object, track it, then decide which tracks the sentence
refers to.

    frames -> vision encoder (C2..C5) -> ObjectDecoder: Q object queries per frame (mask, objectness, embedding;
    no language)  -> QueryTracker: queries linked over the video into K = Q track slots
    -> frame_descriptors: per track and frame, geometry + embedding + C2/C3/C4 pooled under the mask
    -> TrackReferrer(descriptors, words): a logit per track (is it referred?) and per track and frame (relevance)

The answer for a sentence is the union of the masks of its selected tracks, in the frames where they are objects:
as logits, max over tracks k of min(mask_k, track_logit_k, objectness_kt) (a fuzzy AND inside a fuzzy OR, so
thresholding it at 0.5 is exactly "pixel on AND track referred AND object present"). A sentence that fits no track
gives no mask: presence = max over k of min(track_logit_k, max over t of objectness_kt).

Why: the motion, relation and position sentences of RVOS are statements about whole tracks and about several
objects at once; the per-frame dynamic-filter heads (SimRVOS) must answer them from one frame's pixels. Here every
object of a frame is found once, whatever the sentence, and each sentence costs only the small referrer over the
video's track tokens. `decode` treats the frames it is given as one whole video (the clip form other code calls);
the Predictor runs the video-level form (infer/track_predictor.py): objects a window at a time, tracks online, the
referrer once per sentence over the whole video, masks in a second pass.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import nn

from rvos.errors import ConfigError
from rvos.models.objects import FrameObjects, ObjectDecoder
from rvos.models.output import RVOSOutput
from rvos.models.referring import TrackInputs, TrackReferrer, frame_descriptors, video_inputs
from rvos.models.rvos_model import check_decode_inputs, forward_clip
from rvos.models.text import TextEncoder, TextFeatures
from rvos.models.tracking import gather_tracks, link_queries
from rvos.models.vision import VisionEncoder

POOLED_LEVELS = (0, 1, 2)  # C2, C3, C4 are pooled under each mask into the track descriptors


@dataclass
class ClipTracks:
    """A clip's objects in track order."""

    embed: torch.Tensor  # [B, T, K, D]
    logits: torch.Tensor  # [B, T, K] objectness
    masks: torch.Tensor  # [B, T, K, h, w] mask logits
    descriptors: list[torch.Tensor]  # B tensors [T, K, F]


def compose(masks: torch.Tensor, objectness: torch.Tensor, track_logits: torch.Tensor) -> torch.Tensor:
    """masks [T, K, h, w], objectness [T, K], track logits [K] -> the sentence's mask logits [T, h, w]."""
    gate = torch.minimum(objectness, track_logits[None])  # [T, K]
    return torch.minimum(masks, gate[..., None, None]).amax(1)


def describe_tracks(objects: FrameObjects, features: list[torch.Tensor], perm: torch.Tensor,
                    frames: Optional[torch.Tensor] = None) -> torch.Tensor:
    """N frames' objects and C2..C5, perm [N, Q] (slot -> query), and the input frames [N, 3, H, W] for a model with
    `ref_colour` (None otherwise) -> descriptors [N, K, F] in track order (no parameters: the ONNX runtime calls it
    on the objects graph's outputs as the torch model does)."""
    # each query's descriptor depends on that query alone: describe in query order, then reorder the small result
    desc = frame_descriptors(objects.embed, objects.logits, objects.masks, [features[i] for i in POOLED_LEVELS],
                             frames)
    return gather_tracks(desc, perm)  # [N, K, F]


def colour_input(colour: bool, frames: Optional[torch.Tensor], model: str) -> Optional[torch.Tensor]:
    """The frames the descriptors read colour from: `frames` for a colour model (which needs them), else None;
    `model` names the model in the error (the torch model, or an ONNX export's folder)."""
    if not colour:
        return None
    if frames is None:
        raise ConfigError(f"{model} was trained with model.ref_colour=true: its track descriptors read the input "
                          "frames' colour, so describe/decode need the frames, not only features")
    return frames


def presence_logit(objectness: torch.Tensor, track_logits: torch.Tensor) -> torch.Tensor:
    """objectness [..., T, K], track logits [..., K] -> [...]: the best track that is referred and is an object."""
    return torch.minimum(track_logits, objectness.amax(-2)).amax(-1)


class ObjectRVOSModel(nn.Module):
    video_level = True  # the Predictor decides over whole videos (infer/track_predictor.py)

    def __init__(self, *, vision: VisionEncoder, text: TextEncoder, objects: ObjectDecoder, referrer: TrackReferrer,
                 bins: int = 32, momentum: float = 0.8, colour: bool = False, config=None):
        super().__init__()
        self.vision, self.text, self.objects, self.referrer = vision, text, objects, referrer
        self.bins, self.momentum, self.config = bins, momentum, config
        self.colour = colour  # the descriptors carry the mean RGB under each mask (model.ref_colour): needs frames

    def encode_frames(self, frames: torch.Tensor) -> list[torch.Tensor]:
        """frames [N, 3, H, W] in [0, 1] -> [C2, C3, C4, C5], each [N, C_l, H_l, W_l]."""
        return self.vision(frames)

    def encode_text(self, texts: list[str]) -> TextFeatures:
        return self.text(texts)

    def frame_objects(self, features: list[torch.Tensor]) -> FrameObjects:
        """Per frame, independently: C2..C5 [N, C_l, H_l, W_l] -> the N frames' object queries."""
        return self.objects(features)

    def describe(self, objects: FrameObjects, features: list[torch.Tensor], perm: torch.Tensor,
                 frames: Optional[torch.Tensor] = None) -> torch.Tensor:
        """N frames' objects and features, perm [N, Q] (slot -> query), the input frames [N, 3, H, W] (read only
        with `colour`) -> descriptors [N, K, F] in track order."""
        return describe_tracks(objects, features, perm, self.colour_frames(frames))

    def colour_frames(self, frames: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        return colour_input(self.colour, frames, "this objects model")

    def track_clip(self, features: list[torch.Tensor], B: int, T: int,
                   objects: Optional[FrameObjects] = None, frames: Optional[torch.Tensor] = None) -> ClipTracks:
        """features per level [B*T, C_l, H_l, W_l] (frame-major within a clip), frames [B*T, 3, H, W] (needed with
        `colour`): each clip linked as one video."""
        objects = objects or self.frame_objects(features)
        frames = self.colour_frames(frames)
        embed, logits, masks, descs = [], [], [], []
        for b in range(B):
            sl = slice(b * T, (b + 1) * T)
            perm = link_queries(objects.embed[sl], objects.logits[sl], self.momentum)  # [T, Q]
            embed.append(gather_tracks(objects.embed[sl], perm))
            logits.append(gather_tracks(objects.logits[sl], perm))
            masks.append(gather_tracks(objects.masks[sl], perm))
            descs.append(frame_descriptors(embed[-1], logits[-1], masks[-1], [features[i][sl] for i in POOLED_LEVELS],
                                           None if frames is None else frames[sl]))
        return ClipTracks(torch.stack(embed), torch.stack(logits), torch.stack(masks), descs)

    def track_inputs(self, descriptors: list[torch.Tensor]) -> TrackInputs:
        return video_inputs(descriptors, self.bins)

    def refer(self, inputs: TrackInputs, text: TextFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """-> track logits [B, K], relevance logits [B, K, T'] (T' = the resampled length, <= bins)."""
        return self.referrer(inputs, text.words, text.pad_mask, text.sentence)

    @property
    def decode_needs_frames(self) -> bool:  # forward_clip then passes decode the frames too
        return self.colour

    def decode(self, features: list[torch.Tensor], text: TextFeatures, B: int, T: int,
               frames: Optional[torch.Tensor] = None) -> RVOSOutput:
        """The clip form: each of the B clips of T frames is treated as a whole video (see the module docstring)."""
        check_decode_inputs(features, text, B, T)
        tracks = self.track_clip(features, B, T, frames=frames)  # frames [B*T, 3, H, W]: colour models only
        track_logits, relevance = self.refer(self.track_inputs(tracks.descriptors), text)  # [B, K], [B, K, T']
        if relevance.shape[-1] != T:  # resampled: back to frames, nearest bin
            idx = (torch.arange(T, device=relevance.device) * relevance.shape[-1] // T)
            relevance = relevance[..., idx]
        masks = torch.stack([compose(tracks.masks[b], tracks.logits[b], track_logits[b]) for b in range(B)])
        gate = torch.minimum(tracks.logits, track_logits[:, None])  # [B, T, K]
        return RVOSOutput(
            mask_logits=masks[:, :, None],  # [B, T, 1, h, w]
            scores=gate.amax(-1, keepdim=True),  # [B, T, 1]
            filters=track_logits[:, None, :].expand(B, T, -1),  # [B, T, K]: no dynamic filters; the track logits
            mask_features=tracks.masks,  # [B, T, K, h, w] the tracks' masks
            sentence=text.sentence,
            presence=presence_logit(tracks.logits, track_logits),  # [B]
            relevance=torch.minimum(relevance, track_logits[..., None]).amax(1),  # [B, T]
            extras={"track_logits": track_logits, "track_objectness": tracks.logits, "track_relevance": relevance},
        )

    def forward(self, frames: Optional[torch.Tensor], text, features: Optional[list[torch.Tensor]] = None
                ) -> RVOSOutput:
        return forward_clip(self, frames, text, features)
