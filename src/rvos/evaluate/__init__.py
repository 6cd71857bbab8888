"""rvos.evaluate: metrics (J, F, A2D P@k/IoU/mAP, R2-VOS R, temporal IoU) and benchmark protocols
(DAVIS semi-supervised, all-frames Ref-DAVIS/MeViS/Ref-YouTube-VOS, A2D/JHMDB, R2-VOS, temporal grounding)
over predictions from PNG folders, RLE JSON or memory. `rvos eval` is `rvos.evaluate.command`."""
from rvos.evaluate.jf import BOUND_TH, bound_pix, db_statistics, disk, f_measure, frame_jf, jaccard, seg2bmap
from rvos.evaluate.metrics import (
    A2DMetric,
    JFMetric,
    RobustnessMetric,
    TemporalIoUMetric,
    spans_from_masks,
    temporal_iou,
)
from rvos.evaluate.predictions import (
    ExpressionFolderPredictions,
    MemoryPredictions,
    PaletteFolderPredictions,
    Predictions,
    RLEJsonPredictions,
    open_predictions,
)
from rvos.evaluate.protocols import PROTOCOLS, evaluate_predictions
from rvos.evaluate.result import EvalResult
from rvos.evaluate.units import Unit

__all__ = [
    "BOUND_TH", "bound_pix", "db_statistics", "disk", "f_measure", "frame_jf", "jaccard", "seg2bmap",
    "A2DMetric", "JFMetric", "RobustnessMetric", "TemporalIoUMetric", "spans_from_masks", "temporal_iou",
    "ExpressionFolderPredictions", "MemoryPredictions", "PaletteFolderPredictions", "Predictions",
    "RLEJsonPredictions", "open_predictions", "PROTOCOLS", "evaluate_predictions", "EvalResult", "Unit",
]
