"""Reproductions of the MIRO paper's experiments on ShapesWorld (`rewardflow experiment ...`)."""

from .config import PaperConfig, load_configs, quick_paper
from .paper import model_specs, run_paper, tts_curves

__all__ = ["PaperConfig", "load_configs", "model_specs", "quick_paper", "run_paper", "tts_curves"]
