"""Expression augmentation for WSRVOS: backends (rules, openai, dataset), the similarity filter, the JSONL cache.

    from rvos.augment import AugWriter, RulesBackend, TextSimilarityScorer, augment_records
    records = open_dataset("runs/demo/data", split="train")
    with AugWriter("runs/aug.jsonl", {"backend": "rules", ...}) as w:
        augment_records(records, RulesBackend(domain=[e.text for r in records for e in r.expressions]),
                        TextSimilarityScorer(), w, num_positives=6, num_negatives=12, threshold=0.8)
    records, coverage = apply_augmentation(records, read_augmentation("runs/aug.jsonl")[1])
"""
from rvos.augment.cache import AugEntry, AugWriter, apply_augmentation, read_augmentation
from rvos.augment.lexicon import Lexicon, build_lexicon, real_sentences
from rvos.augment.openai_backend import AugmentError, OpenAIBackend, OpenAIConfig
from rvos.augment.rules import RulesBackend
from rvos.augment.run import AugStats, DatasetBackend, augment_records
from rvos.augment.scorers import ModelScorer, NoScorer, TextSimilarityScorer, build_scorer

__all__ = ["AugEntry", "AugWriter", "apply_augmentation", "read_augmentation", "Lexicon", "build_lexicon",
           "real_sentences", "AugmentError", "OpenAIBackend", "OpenAIConfig", "RulesBackend", "AugStats",
           "DatasetBackend", "augment_records", "ModelScorer", "NoScorer", "TextSimilarityScorer", "build_scorer"]
