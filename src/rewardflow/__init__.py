"""rewardflow: multi-reward conditioned flow matching (MIRO) for text-to-image models.

    from rewardflow import RewardFlowPipeline          # as diffusers exports its pipelines
    pipe = RewardFlowPipeline.from_pretrained("runs/demo/models/miro")

`import rewardflow` stays cheap: the names below load their modules when first used.
"""

__version__ = "0.1.0"

_LAZY = {
    "RewardFlowPipeline": "rewardflow.sampling.pipeline",
    "RewardFlowPipelineOutput": "rewardflow.sampling.output",
    "TrainConfig": "rewardflow.training.config",
    "Trainer": "rewardflow.training.trainer",
}
__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'rewardflow' has no attribute {name!r}")
