"""Monocular depth: TCMonoDepth small, turned into a stable disparity fused with the person matte.

- :mod:`.backends`: the model behind :class:`DepthModel` (onnxruntime with its session tuning and
  the split-off last layer of :mod:`.graph`, or cv2.dnn);
- :mod:`.fitting`: where a frame goes in the model's input, the buffers of one frame size;
- :mod:`.runner`: the model in its own thread;
- :mod:`.estimator`: :class:`DepthEstimator`, the stage (how a model result becomes disparity).
"""

from .backends import MODEL_H, MODEL_W, DepthModel, OnnxDepth, OpenCVDepth, model_spins, model_threads, open_backend
from .estimator import FALLBACK_PERSON_DISPARITY, DepthEstimator
from .fitting import Fit, compute_fit
from .runner import THREAD_NAME

__all__ = ["MODEL_H", "MODEL_W", "DepthModel", "OnnxDepth", "OpenCVDepth", "model_spins", "model_threads",
           "open_backend", "FALLBACK_PERSON_DISPARITY", "DepthEstimator", "Fit", "compute_fit", "THREAD_NAME"]
