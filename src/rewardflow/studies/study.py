"""A study: one output folder in which ShapesWorld data, reward scores, bins, trained models and
their evaluations are made as cached stages. `rewardflow demo` and `rewardflow experiment paper`
are two studies; this module holds what both need.

`Study` carries the settings, the folders, the stage runner, the text encoder and the loaded
pipelines; `prepare_data` runs the data -> score -> bins stages that every study starts with.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import evaluate as ev
from .config import DemoConfig
from .stages import StageRunner, digest


def shapes_config(cfg: DemoConfig):
    from rewardflow.shapes import ShapesConfig

    return ShapesConfig.from_preset(cfg.shapes_preset, **cfg.shapes_overrides)


def train_config(cfg: DemoConfig, data_dir: Path, out_dir: Path, mode: str, text_cache: Path, keys=None):
    """The TrainConfig of one study model: the study's `train` with what the study decides
    filled in. `mode`: baseline | miro (every reward) | single (only `keys`)."""
    from rewardflow.training import TrainConfig

    d = cfg.train.to_dict()
    d["data"].update(
        path=str(data_dir),
        mode="miro" if mode == "miro" else "baseline",
        reward_keys=list(cfg.rewards) if mode == "miro" else [],
        image_size=shapes_config(cfg).size,
        text_cache=str(text_cache),
    )
    steps = d["max_steps"]
    # A few checkpoints make an interrupted study resume mid-training instead of restarting.
    d.update(checkpoint=dict(every=max(1, steps // 3), keep_last=1), log_every=max(1, steps // 40))
    d.update(seed=cfg.seed, out_dir=str(out_dir))
    tc = TrainConfig.from_dict(d)
    if mode == "single":
        tc.data.mode, tc.data.reward_keys = "single", list(keys or [])
    return tc


def training_signature(cfg: DemoConfig) -> dict[str, Any]:
    """What every model's training stage depends on besides its data and its mode, read off the
    TrainConfig the study builds (so a setting that reaches training can never be left out) and
    the callback that logs the training curves. Paths and the progress bar are left out."""
    tc = train_config(cfg, Path("data"), Path("out"), "miro", Path("text_cache")).to_dict()
    tc.pop("out_dir"), tc.pop("progress")
    tc["data"].pop("path"), tc["data"].pop("text_cache")
    curves = cfg.section("eval_every", "eval_prompts", "eval_steps", "guidance", "seed", "sample_batch")
    return {"train": tc, "curves": dict(curves, prompts=ev.curve_entries(cfg))}


def choose_threads(cfg: DemoConfig, trials: int = 3) -> int:
    """1 thread, or all cores if the machine is idle and they make a training step clearly faster.

    On a shared, oversubscribed machine OpenMP threads wait for descheduled siblings: a step
    measured 7x slower with 2 threads than with 1 (docs/DEMO.md, "Threads on a shared machine").
    """
    import torch

    from rewardflow.models import build_model, model_config_from_preset

    n = os.cpu_count() or 1
    if n == 1:
        return 1
    mc = model_config_from_preset(cfg.model_preset, reward_keys=tuple(cfg.rewards), **cfg.model_overrides)
    model = build_model(mc).train()
    b = min(cfg.batch_size, 32)
    x, t = torch.randn(b, mc.in_channels, mc.image_size, mc.image_size), torch.rand(b)
    text, mask, r = (
        torch.randn(b, 32, mc.text_dim),
        torch.ones(b, 32, dtype=torch.bool),
        torch.rand(b, len(cfg.rewards)),
    )
    best: dict[int, float] = {}
    for k in (1, n):
        torch.set_num_threads(k)
        times = []
        for _ in range(trials):
            t0 = time.perf_counter()
            model(x, t, text, mask, r).square().mean().backward()
            times.append(time.perf_counter() - t0)
        best[k] = min(times[1:] or times)
    # Many threads only when clearly faster on an idle machine: under contention the all-cores
    # step degrades 7-10x (measured) as soon as any other job starts, 1 thread only ~2x.
    others = busy_cores()
    choice = n if others < 0.5 and best[n] < 0.75 * best[1] else 1
    print(
        f"torch threads: {choice} (one step {best[1] * 1e3:.0f} ms with 1 thread, "
        f"{best[n] * 1e3:.0f} ms with {n}; other processes busy on {others:.1f} core(s))",
        flush=True,
    )
    return choice


def busy_cores(seconds: float = 1.0) -> float:
    """Cores the machine's other processes keep busy right now (this one sleeps while it is
    measured), from /proc/stat; elsewhere the 1-minute load average. The load average lags: it
    still reads ~1 a minute after `pip install` has finished, when the machine is idle."""

    def sample():
        with open("/proc/stat") as fh:
            v = [int(x) for x in fh.readline().split()[1:]]
        return sum(v), v[3] + (v[4] if len(v) > 4 else 0)  # total, idle + iowait

    try:
        t0, i0 = sample()
        time.sleep(seconds)
        t1, i1 = sample()
    except (OSError, ValueError, IndexError):
        return os.getloadavg()[0]
    return (1 - (i1 - i0) / max(t1 - t0, 1)) * (os.cpu_count() or 1)


@dataclass
class Study:
    cfg: DemoConfig
    out: Path
    runner: StageRunner
    threads: int
    progress: bool = True
    load_start: tuple[float, ...] = ()
    _encoder: Any = None
    _pipes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, cfg: DemoConfig, out: str | Path, stages: int, progress: bool, settings: tuple[str, Any]) -> Study:
        """Create OUT, choose and set the torch threads, write `settings` = (file name, JSON)."""
        import torch

        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        threads = cfg.threads or choose_threads(cfg)
        torch.set_num_threads(threads)
        load_start = os.getloadavg()
        (out / settings[0]).write_text(json.dumps(settings[1], indent=2))
        return cls(cfg, out, StageRunner(out, total=stages), threads, progress, load_start)

    data_dir = property(lambda self: self.out / "data")
    text_cache = property(lambda self: self.out / "text_cache")
    eval_dir = property(lambda self: self.out / "eval")

    def run_dir(self, name: str) -> Path:
        return self.out / "runs" / name

    def model_dir(self, name: str) -> Path:
        return self.out / "models" / name

    def text_encoder(self):
        if self._encoder is None:
            from rewardflow.training.builders import build_text_encoder

            tc = train_config(self.cfg, self.data_dir, self.run_dir("miro"), "miro", self.text_cache)
            self._encoder = build_text_encoder(tc)
        return self._encoder

    def pipe(self, name: str):
        """The trained pipeline `name`, loaded once (with its saved default guidance)."""
        if name not in self._pipes:
            from rewardflow.sampling.pipeline import RewardFlowPipeline

            self._pipes[name] = RewardFlowPipeline.from_pretrained(
                self.model_dir(name), text_encoder=self.text_encoder()
            )
        return self._pipes[name]

    def set_default_guidance(self, name: str, result: dict, images: int) -> None:
        """Save a guidance sweep's choice in the model folder (every time: a folder rewritten by a
        retraining must not lose its default) and in the loaded pipeline."""
        ev.save_default_guidance(self.model_dir(name), result, images, self.cfg.sample_steps)
        if name in self._pipes:
            self._pipes[name].config.update(result["best"])

    def machine(self) -> dict[str, Any]:
        import torch

        return dict(
            cpus=os.cpu_count(),
            torch_threads=self.threads,
            load_start=self.load_start,
            load_end=os.getloadavg(),
            platform=platform.platform(),
            torch=torch.__version__,
        )


def prepare_data(study: Study) -> tuple[str, dict]:
    """The data -> score -> bins stages: (signature everything trained on them depends on,
    {"data_rewards": {reward: {mean, p10, p90}}})."""
    from rewardflow.data.binning import QUANTILE_RULE
    from rewardflow.rewards.registry import reward_versions

    cfg, runner, data_dir = study.cfg, study.runner, study.data_dir
    shapes = shapes_config(cfg)
    sig_data = digest([shapes.to_dict(), cfg.num_images, cfg.shard_size, cfg.seed])

    def make_data():
        from rewardflow.shapes import generate_dataset

        kw = dict(seed=cfg.seed, shard_size=cfg.shard_size, workers=cfg.data_workers, progress=study.progress)
        shards = generate_dataset(shapes, cfg.num_images, data_dir, **kw)
        return {"shards": len(shards), "images": cfg.num_images}

    title = f"generate ShapesWorld ({cfg.shapes_preset}, {cfg.num_images} images)"
    outputs, clean = (data_dir / "shapes_config.json",), (data_dir, study.text_cache)
    runner.run("data", title, sig_data, make_data, outputs=outputs, clean=clean)
    sig_score = digest([sig_data, reward_versions(cfg.rewards)])

    def score():
        from rewardflow.rewards.scoring import score_dataset

        rep = score_dataset(data_dir, cfg.rewards, workers=cfg.data_workers, progress=study.progress)
        return {"summary": rep.summary()}

    runner.run("score", f"score every image with {', '.join(cfg.rewards)}", sig_score, score)
    sig_bins = digest([sig_score, cfg.num_bins, QUANTILE_RULE])

    def fit_bins():
        from rewardflow.data.binning import RewardBins
        from rewardflow.rewards.scoring import read_scores

        scores = read_scores(data_dir, cfg.rewards)
        RewardBins.fit(scores, num_bins=cfg.num_bins, seed=cfg.seed).save(data_dir / "bins.json")
        q = {"mean": np.mean, "p10": lambda v: np.quantile(v, 0.1), "p90": lambda v: np.quantile(v, 0.9)}
        return {"data_rewards": {k: {n: float(f(v)) for n, f in q.items()} for k, v in scores.items()}}

    title = f"fit {cfg.num_bins} quantile bins per reward"
    return sig_bins, runner.run("bins", title, sig_bins, fit_bins, outputs=(data_dir / "bins.json",))
