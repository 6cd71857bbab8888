"""The rules backend and its lexicon (built from the real sentences of ../shared/data/text), the similarity
filter, the JSONL cache (resume, a killed run's partial line) and `rvos augment` on the DAVIS sample."""
from __future__ import annotations

import json

import numpy as np
import pytest

from rvos.augment.cache import AugEntry, AugWriter, ScoredText, apply_augmentation, read_augmentation
from rvos.augment.lexicon import build_lexicon, real_sentences, words
from rvos.augment.rules import RulesBackend
from rvos.cli import main
from rvos.data.readers import open_dataset
from rvos.errors import DatasetError

SYNTH = ["the lowest disc", "the small disc standing still", "the yellow round shape moving to the right",
         "the triangle beneath the little circle", "the three discs", "a car", "the purple car on the left"]


@pytest.fixture(scope="module")
def backend(text_data):
    return RulesBackend(domain=SYNTH, text_dir=text_data)


def test_lexicon_is_counted_from_the_real_sentences(text_data):
    sentences, phrases = real_sentences(text_data)
    assert len(sentences) == 10100 and len(phrases) == 6655  # Ref-YouTube-VOS, Ref-DAVIS, A2D (x2), A2D short queries
    lex = build_lexicon(sentences, phrases)
    assert len(lex.categories) > 150 and len(lex.actions) > 80  # far beyond any seed list
    assert {"dog", "man", "car", "camel", "parrot", "kangaroo"} <= set(lex.categories)
    assert {"walking", "running", "climbing", "eating"} <= set(lex.actions)
    assert not {"white", "left", "walking", "the", "small"} & set(lex.categories)
    assert lex.categories["dog"] > lex.categories["camel"] > 0  # corpus counts
    assert {"red", "white", "brown"} <= set(lex.colours) and {"small", "big"} <= set(lex.sizes)
    assert {"left", "top", "middle"} <= set(lex.positions) and {"up", "down"} <= set(lex.directions)


SLOTS = {"category": {"categories"}, "attribute": {"colours", "sizes", "textures", "positions"},
         "action": {"actions", "directions"}}


@pytest.mark.parametrize("text", SYNTH + ["a boy in a red tshirt performing a breakdance", "a camel moving",
                                          "a white dog is running to the right", "the man walking on the left"])
def test_negatives_change_exactly_one_slot_and_never_to_a_synonym(backend, text):
    negs = backend.negatives(text, 12, np.random.default_rng(0))
    assert negs and len({n.text for n in negs}) == len(negs)
    lex = backend.lexicon
    spans = backend.spans(words(text))
    for n in negs:  # one span of the sentence, of the class the kind names, replaced: nothing else differs
        span = next(sp for sp in spans if " ".join(words(text)[sp.start: sp.end]) == n.old and sp.cls == n.slot)
        toks = words(text)
        rebuilt = toks[: span.start] + n.new.split() + toks[span.end:]
        strip = lambda t: [w for w in t if w not in ("a", "an")]  # noqa: E731  (articles follow the new word)
        assert strip(words(n.text)) == strip(rebuilt) and n.old != n.new, n
        assert n.slot in SLOTS[n.changed], n
        assert not lex.related(n.old, n.new) and not lex.related(n.new, n.old), n
    possible = {k for k, cls in SLOTS.items() if any(backend._alternatives(sp)[0] for sp in spans if sp.cls in cls)}
    assert {n.changed for n in negs} == possible  # the three kinds take turns: none that can be made is missing


def test_negatives_by_hand(backend):
    negs = {(n.changed, n.text) for n in backend.negatives("the small disc standing still", 12, np.random.default_rng(0))}
    assert ("attribute", "the large disc standing still") in negs or ("attribute", "the big disc standing still") in negs
    assert ("category", "the small triangle standing still") in negs  # from the dataset's own categories
    assert ("action", "the small disc moving") in negs  # "standing still" is one action span
    negs = {n.text for n in backend.negatives("the yellow round shape moving to the right", 12, np.random.default_rng(0))}
    assert "the yellow round shape moving to the left" in negs  # a direction: the action's
    assert not any("circle" in t or " disc " in f" {t} " for t in negs)  # synonyms of "round shape" are no negative
    assert "the man walking on the right" in {n.text for n in backend.negatives("the man walking on the left", 12,
                                                                                 np.random.default_rng(0))
                                              if n.changed == "attribute"}  # "on the left": a position


def test_positives_only_reword(backend):
    rng = np.random.default_rng(0)
    assert set(backend.positives("the lowest disc", 6, rng)) <= {
        "the lowest circle", "the lowest round shape", "the bottommost disc", "the bottommost circle",
        "the bottommost round shape"}
    pos = backend.positives("the small disc standing still", 6, np.random.default_rng(0))
    assert "the small disc not moving" in pos and "the small disc that is standing still" in pos
    assert all(p != "the small disc standing still" for p in pos)
    assert backend.positives("a car", 6, np.random.default_rng(0))[:3] and \
        "an automobile" in backend.positives("a car", 6, np.random.default_rng(0))  # articles follow the word
    a = backend.positives("the three discs", 6, np.random.default_rng(1))
    assert a == backend.positives("the three discs", 6, np.random.default_rng(1))  # seeded
    assert set(a) <= {"the three circles", "the three round shapes"}  # plural kept, no "a three"


def test_cache_resume_partial_line_and_settings(tmp_path):
    path = tmp_path / "aug.jsonl"
    e1 = AugEntry("v", "0", "a red car", [ScoredText("a red automobile", 0.9, True)], [])
    with AugWriter(path, {"backend": "rules", "positives": 2}) as w:
        w.write(e1)
    with open(path, "a") as f:
        f.write('{"video": "v", "exp_id": "1", "te')  # a killed run's last line
    header, entries = read_augmentation(path)
    assert header["backend"] == "rules" and list(entries) == [("v", "0")]
    with AugWriter(path, {"backend": "rules", "positives": 2}) as w:  # resuming cuts the partial line off
        assert set(w.done) == {("v", "0")}
        w.write(AugEntry("v", "1", "a dog", [], []))
    assert path.read_text().count("\n") == 3 and set(read_augmentation(path)[1]) == {("v", "0"), ("v", "1")}
    with pytest.raises(DatasetError, match="other settings"):
        AugWriter(path, {"backend": "rules", "positives": 3})
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"rvos_augment": 1}\n{"video": "v"}\n')
    with pytest.raises(DatasetError, match="bad.jsonl:2"):
        read_augmentation(bad)


def test_apply_augmentation_filters_and_checks_the_text(davis_sample):
    records = open_dataset(davis_sample)
    rec = records[0]
    exp = rec.expressions[0]
    entry = AugEntry(rec.video_id, exp.exp_id, exp.text,
                     [ScoredText("p1", 0.95, True), ScoredText("p2", 0.5, False)], [])
    out, cov = apply_augmentation(records, {entry.key: entry})
    assert out[0].expressions[0].augmented_positives == ["p1"] and cov.covered == 1 and cov.positives_dropped == 1
    out, _ = apply_augmentation(records, {entry.key: entry}, threshold=0.4)
    assert out[0].expressions[0].augmented_positives == ["p1", "p2"]
    assert exp.augmented_positives == []  # inputs are not changed
    wrong = AugEntry(rec.video_id, exp.exp_id, "another sentence", [], [])
    with pytest.raises(DatasetError, match="another dataset"):
        apply_augmentation(records, {wrong.key: wrong})
    with pytest.raises(DatasetError, match="covers none"):
        apply_augmentation(records, {("nope", "0"): entry})


def test_text_scorer_ranks_a_paraphrase_above_a_negative():
    from rvos.augment.scorers import TextSimilarityScorer

    from rvos.data.types import Expression
    s = TextSimilarityScorer().score(None, Expression("0", "a black car moving through a roundabout", [1]),
                                     ["a black automobile moving through a roundabout", "a brown goat eating grass"])
    assert s[0] > 0.8 > s[1]


def test_cli_rules_on_the_davis_sample_writes_and_resumes(tmp_path, davis_sample, text_data, capsys):
    out = tmp_path / "davis_rules.jsonl"
    args = ["augment", str(davis_sample), "--backend", "rules", "--out", str(out), "--scorer", "text",
            "--positives", "4", "--negatives", "6", "--text-dir", str(text_data)]
    assert main(args + ["--limit", "4"]) == 0
    assert "4 expressions augmented (0 already in the file)" in capsys.readouterr().out
    assert main(args) == 0
    assert "2 expressions augmented (4 already in the file)" in capsys.readouterr().out
    header, entries = read_augmentation(out)
    assert header["backend"] == "rules" and header["scorer"] == "text" and header["threshold"] == 0.8
    assert len(entries) == 6
    camel = entries[("camel", "0")]
    assert camel.text == "a camel moving" and camel.negatives and all(n.changed for n in camel.negatives)
    assert all(p.kept == (p.score >= 0.8) for e in entries.values() for p in e.positives)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(lines) == 7 and lines[0]["rvos_augment"] == 1
    assert main(args[:-4] + ["--positives", "5", "--negatives", "6", "--text-dir", str(text_data)]) == 2
    assert "other settings" in capsys.readouterr().err
