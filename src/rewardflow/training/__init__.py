"""rewardflow.training: config, trainer (the only accelerate-aware code), EMA, checkpoints, logging.

from rewardflow.training import TrainConfig, Trainer
cfg = TrainConfig.load("configs/shapes-miro.yaml", ["max_steps=500", "out_dir=runs/miro"])
Trainer(cfg).train()          # run it again to resume from the newest checkpoint
"""

from .callbacks import Callback, FunctionCallback, RewardEvalCallback, SampleGridCallback, default_prompts
from .checkpoint import latest_checkpoint, list_checkpoints
from .config import TrainConfig, check_resume_config, config_diff
from .distributed import DataContext
from .ema import EMA
from .logging import RunLogger, read_jsonl
from .optim import Lamb, build_optimizer, build_scheduler, lr_factor
from .trainer import Trainer

__all__ = [
    "Callback",
    "DataContext",
    "EMA",
    "FunctionCallback",
    "Lamb",
    "RewardEvalCallback",
    "RunLogger",
    "SampleGridCallback",
    "TrainConfig",
    "Trainer",
    "build_optimizer",
    "build_scheduler",
    "check_resume_config",
    "config_diff",
    "default_prompts",
    "latest_checkpoint",
    "list_checkpoints",
    "lr_factor",
    "read_jsonl",
]
