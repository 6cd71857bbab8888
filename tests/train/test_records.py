"""Training records: a dataset repeated by data.repeat, plus data.extra_synth videos generated in
data.extra_synth_dir (the DAVIS sample is read-only, so nothing may be written next to it)."""
from __future__ import annotations

import pytest

from rvos.errors import ConfigError
from rvos.train.config import load_config
from rvos.train.loop import is_extra, load_records, unique_records
from rvos.train.provenance import training_data


def test_repeat_and_extra_synth_dir(davis_sample, tmp_path):
    before = sorted(p.name for p in davis_sample.parent.iterdir())
    cfg = load_config(None, [f"data.root={davis_sample}", "data.train_split=val", "data.extra_synth=2",
                             f"data.extra_synth_dir={tmp_path}", "data.repeat=3"])
    records = load_records(cfg, "val")
    own, extra = [r for r in records if not is_extra(r)], [r for r in records if is_extra(r)]
    assert len(own) == 18 and len({r.video_id for r in own}) == 6  # every DAVIS video three times
    assert len(extra) == 2 and all(r.video_id.startswith("davis-sample-extra2-seed1/") for r in extra)
    assert (tmp_path / "davis-sample-extra2-seed1" / "synth.json").is_file()
    assert sorted(p.name for p in davis_sample.parent.iterdir()) == before  # nothing written beside the root
    assert [r.video_id for r in unique_records(records)] == [r.video_id for r in own[:6] + extra]
    info = training_data(cfg, records)
    assert info["videos"] == 8 and info["repeat"] == 3 and info["extra_synth"] == 2
    assert info["frames"] == sum(len(r.video) for r in own[:6] + extra)
    cfg.data.train_split = "train"  # "val" is now the validation split: neither repeated nor extended
    assert [r.video_id for r in load_records(cfg, "val")] == [r.video_id for r in own[:6]]
    cfg.data.train_split = "val"
    cfg.data.repeat = 0
    with pytest.raises(ConfigError, match="data.repeat must be >= 1"):
        load_records(cfg, "val")


def test_extra_synth_frames(davis_sample, tmp_path):
    cfg = load_config(None, [f"data.root={davis_sample}", "data.train_split=val", "data.extra_synth=2",
                             f"data.extra_synth_dir={tmp_path}", "data.extra_synth_frames=8"])
    extra = [r for r in load_records(cfg, "val") if is_extra(r)]
    assert [len(r.video) for r in extra] == [8, 8]  # shorter videos, in a folder of their own
    assert all(r.video_id.startswith("davis-sample-extra2-seed1-f8/") for r in extra)
    cfg.data.extra_synth_frames = 5
    with pytest.raises(ConfigError, match="data.extra_synth_frames must be 0 or >= 8"):
        load_records(cfg, "val")


def test_packaged_davis_config_loads():
    cfg = load_config("objects_davis")
    assert cfg.model.head == "objects" and cfg.method.name == "objects" and cfg.data.repeat == 4
    assert cfg.data.extra_synth_dir and cfg.data.clip.instances


def test_negative_rule_attributes_keeps_only_certainly_false_pairs(davis_sample, tmp_path):
    from rvos.data.negatives import sample_negatives
    from rvos.data.synth import SynthConfig, generate
    from rvos.data.synth.truth import SynthTruth
    from rvos.train.loop import negative_filter

    root = generate(tmp_path / "s", SynthConfig(frames=8, height=64, width=96, train=4, valid=0, test=0, workers=1))
    cfg = load_config(None, [f"data.root={root}", "data.extra_synth=3", "data.extra_synth_frames=8",
                             "data.negative_rule=attributes"])
    records = load_records(cfg, "train")
    may_refer = negative_filter(cfg)
    truth = SynthTruth.load(root).merged(SynthTruth.load(tmp_path / "s-extra3-seed1-f8", prefix="s-extra3-seed1-f8/"))
    pairs = [(r.video_id, e, v.video_id) for r in records for e in r.expressions for v in records]
    assert [may_refer(*p) for p in pairs] == [truth.may_refer(*p) for p in pairs]  # root and extra videos alike
    assert not all(may_refer(*p) for p in pairs)
    assert all((r.video_id, e.exp_id) in truth.queries for r in records if is_extra(r) for e in r.expressions)
    negatives = sample_negatives(records, 5.0, 0, may_refer=may_refer)
    assert negatives and {r.video_id for r, _ in negatives} & {r.video_id for r in records if is_extra(r)}
    sources = {f"neg-{r.video_id}-{e.exp_id}": (r.video_id, e) for r in records for e in r.expressions}
    for rec, neg in negatives:  # every pair: the sentence matches no object of the video it is paired with
        src, exp = sources[neg.exp_id]
        assert not truth.may_refer(src, exp, rec.video_id)
    assert negative_filter(load_config(None, [f"data.root={root}"])) is None  # the default: R2-VOS's category rule
    with pytest.raises(ConfigError, match="negative_rule must be 'category' or 'attributes'"):
        load_config(None, [f"data.root={root}", "data.negative_rule=colour"])  # even with no negatives sampled
    with pytest.raises(ConfigError, match="needs a synthetic benchmark with stored queries"):
        negative_filter(load_config(None, [f"data.root={davis_sample}", "data.negative_rule=attributes"]))
