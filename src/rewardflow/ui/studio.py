"""What the web page drives: one loaded pipeline, generation one request at a time (the others
wait in a short queue), progress, the images' measured rewards and the reproducing command.
Knows nothing of HTTP (ui/server.py does)."""

from __future__ import annotations

import base64
import io
import threading
import time
from dataclasses import asdict

from .reproduce import command, python_call
from .request import Limits, RequestError, UIRequest, parse_request


class Busy(RuntimeError):
    """The queue is full; try again shortly."""


def _png(image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _examples(pipe) -> list[str]:
    from rewardflow.sampling.prompts import load_prompts

    pixel = pipe.vae is None and pipe.model.config.in_channels == 3  # a ShapesWorld-style model
    distinct = list(dict.fromkeys(load_prompts("shapes" if pixel else "parti")[0]))
    return [distinct[i * len(distinct) // 6] for i in range(min(6, len(distinct)))]  # spread over the set


class Studio:
    def __init__(self, pipe, model_ref: str, limits: Limits | None = None, scorers=None, variant=None):
        self.pipe, self.model_ref, self.variant = pipe, model_ref, variant
        self.limits = limits or Limits()
        self.scorers = dict(scorers or {})  # name -> Reward, to measure every image
        self._run_lock, self._state = threading.Lock(), threading.Lock()
        self._waiting, self._progress = 0, {"busy": False, "done": 0, "total": 0}

    # --- read-only views -----------------------------------------------------------------------
    def info(self) -> dict:
        c, m = self.pipe.config, self.pipe.model.config
        defaults = {k: c[k] for k in ("num_inference_steps", "guidance_scale", "solver", "shift")}
        return {
            "model": self.model_ref,
            "reward_keys": list(self.pipe.reward_keys),
            "reward_null": self._null_usable(),
            "image_size": m.image_size,
            "defaults": defaults,
            "limits": asdict(self.limits),
            "scorers": sorted(self.scorers),
            "examples": _examples(self.pipe),
        }

    def _null_usable(self) -> bool:
        """Whether "unspecified" targets are offered: null tokens the model learned to use."""
        dropout = (self.pipe.config.get("run_config") or {}).get("reward_dropout")
        return bool(getattr(self.pipe.model.config, "reward_null", False)) and (dropout is None or float(dropout) > 0)

    def progress(self) -> dict:
        with self._state:
            return dict(self._progress, waiting=self._waiting)

    def _on_step(self, done: int, total: int) -> None:
        with self._state:
            self._progress.update(done=done, total=total)

    # --- generation ----------------------------------------------------------------------------
    def generate(self, body) -> dict:
        m = self.pipe.model.config
        keys, d = tuple(self.pipe.reward_keys), self.pipe.config
        req = parse_request(body, keys, self.limits, d, m.image_size, tuple(sorted(self.scorers)))
        with self._state:
            if self._waiting >= self.limits.max_queue:
                raise Busy(f"{self._waiting} requests are already waiting; try again in a moment")
            self._waiting += 1
        try:
            with self._run_lock:
                with self._state:
                    self._waiting -= 1
                    self._progress = {"busy": True, "done": 0, "total": req.steps}
                return self._generate(req)
        finally:
            with self._state:
                self._progress["busy"] = False

    def _targets(self, req: UIRequest) -> tuple[dict, dict]:
        from rewardflow.sampling import targets as T

        keys = self.pipe.reward_keys
        base = {
            "high": lambda: T.high_quality(keys),
            "isolate": lambda: T.isolate(keys, req.isolate, req.anchor or None),
            "pairwise": lambda: T.pairwise(keys, *req.pair, req.pair_t, req.anchor or None) if req.pair else None,
        }.get(req.mode, lambda: None)()
        return T.with_overrides(base, req.positive, req.negative)

    def _sample(self, req: UIRequest, pos: dict, neg: dict):
        kw = dict(reward_targets=pos or None, negative_reward_targets=neg or None, guidance_scale=req.guidance)
        kw.update(num_inference_steps=req.steps, solver=req.solver, shift=req.shift, progress=self._on_step)
        if req.best_of > 1:
            from rewardflow.sampling.selection import best_of_n

            prompts = [req.prompt] * req.num_images
            out = best_of_n(self.pipe, prompts, req.best_of, req.select, req.seed, rewards=self.scorers, **kw)
        else:
            out = self.pipe(req.prompt, seed=req.seed, num_images_per_prompt=req.num_images, **kw)
        return out.images, out.seeds

    def _generate(self, req: UIRequest) -> dict:
        t0 = time.perf_counter()
        pos, neg = self._targets(req)
        try:
            tg = self.pipe.resolve_targets(pos or None, neg or None)
            images, seeds = self._sample(req, pos, neg)
        except (ValueError, TypeError) as exc:  # the pipeline's own checks (e.g. unspecified targets)
            raise RequestError(str(exc)) from None
        full = (dict(tg.positive), dict(tg.negative)) if tg else ({}, {})
        return {
            "images": [_png(im) for im in images],
            "scores": self._scores(images, req.prompt),
            "seeds": list(seeds),
            "targets": {"positive": full[0], "negative": full[1]},
            "command": command(req, self.model_ref, self.variant),
            "python": python_call(req, self.model_ref, *full, variant=self.variant),
            "seconds": round(time.perf_counter() - t0, 3),
        }

    def _scores(self, images, prompt: str) -> list[dict]:
        import numpy as np

        arr = np.stack([np.asarray(im.convert("RGB")) for im in images])
        per_image: list[dict] = [{} for _ in images]
        for name, reward in sorted(self.scorers.items()):
            try:
                values = reward.score(arr, [prompt] * len(arr)).tolist()
            except Exception as exc:  # a backend without its weights: say so beside the image
                values = [f"unavailable: {exc}"[:200]] * len(arr)
            for row, v in zip(per_image, values):
                row[name] = v
        return per_image
