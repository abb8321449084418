"""rewardflow: multi-reward conditioned flow matching (MIRO) for text-to-image models."""

__version__ = "0.1.0"
