"""The built-in synthetic RVOS benchmark: procedural videos of shapes and sprites with colours, sizes, textures,
motion, occlusion and objects entering and leaving, plus referring expressions generated from the ground truth
(appearance, position, motion, relation, multi-object, partial-time with spans, absent objects; paraphrased
positives and hard negatives). Written in the Ref-YouTube-VOS layout:

    OUT/{train,valid,test}/JPEGImages/<vid>/<frame>.jpg       frames, JPEG quality 90
    OUT/{train,valid,test}/Annotations/<vid>/<frame>.png      palette PNG, value = object id (every split)
    OUT/{train,valid,test}/meta.json                          videos -> vid -> objects -> id -> {category, frames, ...}
    OUT/meta_expressions/{split}/meta_expressions.json        videos -> vid -> {fps, frames, expressions}
    OUT/meta_expressions/{split}/temporal_spans.json          per (expression, object) the frames it is referred
                                                              to, MeViS-M style (rvos.data.spans): a partial
                                                              expression's spans, else the object's visible frames
    OUT/synth.json                                            config, seed, version, counts

An expression is {exp, obj_id, kind[, spans], aug_pos, hard_neg}; obj_id is "3", a list (multi) or [] (absent).
"""
from rvos.data.synth.config import SynthConfig
from rvos.data.synth.video import generate_video
from rvos.data.synth.writer import generate

__all__ = ["SynthConfig", "generate", "generate_video"]
