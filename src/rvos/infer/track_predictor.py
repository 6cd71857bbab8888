"""The Predictor's path for video-level models (`model.video_level`, the objects head: models/object_model.py).

Pass 1, a window at a time: encode the frames, find every frame's objects (no sentence involved), link them into
tracks online (QueryTracker) and keep, per frame, the small track descriptors [K, F]; the tracks' stride-4 mask
logits and objectness are spilled to a temporary file (float16), so memory does not grow with the masks.
Then the referrer runs once per sentence over the whole video's descriptors (resampled to at most `ref_bins` time
steps): a logit per track. A track is selected when sigmoid(logit) >= the presence threshold; pass 2 reads the
spilled masks back and writes, per frame, the union of the selected tracks' masks where they are objects.
A sentence that selects no track is judged absent (`present=False`, empty masks); with `gate=False` the best
track is kept instead. Per-frame relevance ("the sentence holds now") comes from the referrer's frame logits.
"""
from __future__ import annotations

import math

import torch

from rvos.infer.geometry import Geometry
from rvos.models.object_model import compose
from rvos.models.referring import TrackInputs, rescale_geometry
from rvos.models.tracking import QueryTracker, gather_tracks


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def segment_tracks(pred, video, sentences: list[str], results, keep, sinks, spill, progress) -> None:
    """Fill `results` (SegmentResult per sentence) and feed `sinks`; `pred` is the Predictor, `spill` a
    LogitSpill with one slot."""
    model, n = pred.model, len(video)
    geo = Geometry.create(video.height, video.width, pred.size, pred.pad_to)
    tracker = QueryTracker(model.momentum)
    descs, objectness = [], []
    for start in progress(range(0, n, pred.window)):
        idx = list(range(start, min(n, start + pred.window)))
        x = geo.to_input([video.frame(i) for i in idx]).to(pred.device)  # [n, 3, H, W]
        feats = pred.encode(x)
        with pred._autocast():
            objects = model.frame_objects(feats)
        perm = torch.stack([tracker.step(objects.embed[t], objects.logits[t]) for t in range(len(idx))])
        with pred._autocast():
            d = model.describe(objects, feats, perm, x)  # [n, K, F] (x read only by colour models)
        descs.append(rescale_geometry(d.float().cpu(), geo.pad_h / geo.model_h, geo.pad_w / geo.model_w))
        objectness.append(gather_tracks(objects.logits, perm).float().cpu())  # [n, K]
        spill.append(0, gather_tracks(objects.masks, perm).float())  # [n, K, h, w]
    desc, obj = torch.cat(descs), torch.cat(objectness)  # [N, K, F], [N, K]
    text = model.encode_text(list(sentences))
    one = model.track_inputs([desc.to(pred.device)])
    s = len(sentences)
    inputs = TrackInputs(one.tokens.expand(s, -1, -1, -1), one.alive.expand(s, -1, -1),
                         one.frame_pos.expand(s, -1), one.valid.expand(s, -1))
    with torch.inference_mode(), pred._autocast():
        track_logits, relevance = model.refer(inputs, text)  # [S, K], [S, K, T']
    track_logits, relevance = track_logits.float().cpu(), relevance.float().cpu()
    cut = _logit(pred.presence_threshold)
    bins = (torch.arange(n) * relevance.shape[-1] // n)  # frame -> its time step
    shifted = []
    for k, r in enumerate(results):
        tl = track_logits[k] - cut  # selected <=> sigmoid(logit) >= presence threshold
        best = torch.minimum(tl, obj.amax(0))  # [K] referred and an object somewhere
        r.presence_score = float(torch.sigmoid(best.max() + cut))
        r.present = bool(best.max() >= 0)
        if not r.present and pred.gate is False:  # no gating: keep the best track
            tl = torch.full_like(tl, -1e4)
            tl[best.argmax()] = 1.0
        r.gated = not r.present and pred.gate is not False
        gate = torch.minimum(obj, tl[None])  # [N, K]
        r.scores = torch.sigmoid(gate.amax(1) + cut).tolist()
        r.query = int(best.argmax())
        rel = torch.minimum(relevance[k][:, bins], tl[:, None]).amax(0)  # [N]
        r.relevance = torch.sigmoid(rel + cut).tolist()
        shifted.append(tl)
    read_frames = any(sk.needs_frames for sk in sinks)
    for start in range(0, n, pred.window):
        idx = list(range(start, min(n, start + pred.window)))
        frames = [video.frame(i) for i in idx] if read_frames else [None] * len(idx)
        masks = spill.read_all(0, start, len(idx))  # [n, K, h, w]
        logits = [compose(masks, obj[idx], tl) for tl in shifted]
        pred._emit(geo, idx, frames, [lo.to(pred.device) for lo in logits], results, keep, sinks)

