"""`aesthetic_score`: the LAION improved aesthetic predictor (v2) on OpenAI CLIP ViT-L/14.

The predictor is a purely linear MLP (its dropouts are identity at inference, and the released
"linearMSE" checkpoints have no activations) on the L2-normalised CLIP image embedding; it
predicts a 1-10 rating, stored divided by 10 as MIRO does.
"""

from __future__ import annotations

import torch

from rewardflow.rewards.backends.clip_common import ClipRewardBase, env_or, load_state_dict, resolve_file
from rewardflow.rewards.registry import register_reward

MLP_SOURCES = (
    "https://github.com/christophschuhmann/improved-aesthetic-predictor/raw/main/sac+logos+ava1-l14-linearMSE.pth"
)


class AestheticMLP(torch.nn.Module):
    """Linear stack rebuilt from the checkpoint's own shapes, so the public 768-1024-128-64-16-1
    head and a tiny test head load through the same code."""

    def __init__(self, state_dict: dict[str, torch.Tensor]):
        super().__init__()
        idx = sorted({int(k.split(".")[1]) for k in state_dict if k.startswith("layers.") and k.endswith(".weight")})
        if not idx:
            raise ValueError(
                "aesthetic MLP checkpoint has no 'layers.N.weight' keys; expected the improved-"
                f"aesthetic-predictor state dict ({MLP_SOURCES}); got keys {sorted(state_dict)[:6]}"
            )
        self.linears = torch.nn.ModuleList()
        for i in idx:
            w = state_dict[f"layers.{i}.weight"]
            lin = torch.nn.Linear(w.shape[1], w.shape[0])
            lin.load_state_dict({"weight": w, "bias": state_dict[f"layers.{i}.bias"]})
            self.linears.append(lin)
        for a, b in zip(self.linears[:-1], self.linears[1:]):
            if a.out_features != b.in_features:
                raise ValueError(f"aesthetic MLP layer shapes do not chain: {a} -> {b}")
        if self.linears[-1].out_features != 1:
            raise ValueError(f"aesthetic MLP must end in one output, got {self.linears[-1].out_features}")

    @property
    def in_features(self) -> int:
        return self.linears[0].in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for lin in self.linears:
            x = lin(x)
        return x[:, 0]


@register_reward("aesthetic_score")
class AestheticScore(ClipRewardBase):
    """LAION aesthetic predictor v2 on CLIP ViT-L/14 (prediction / 10)."""

    version = "1"
    higher_is_better = True
    needs_caption = False
    batch_size = 64
    default_model = "openai/clip-vit-large-patch14"
    path_env = "REWARDFLOW_AESTHETIC_CLIP"

    def __init__(
        self,
        path=None,
        device=None,
        dtype=None,
        allow_download: bool = False,
        batch_size: int | None = None,
        mlp_path=None,
        processor_path=None,
    ):
        super().__init__(path, device, dtype, allow_download, batch_size, processor_path)
        self.mlp_path = env_or(mlp_path, "REWARDFLOW_AESTHETIC_MLP")

    def _load(self) -> None:
        if self.mlp_path is None:
            raise FileNotFoundError(
                "aesthetic_score needs the predictor head: pass mlp_path=<file> (or set"
                " REWARDFLOW_AESTHETIC_MLP) pointing at sac+logos+ava1-l14-linearMSE.pth,"
                f" downloaded on a machine with internet from {MLP_SOURCES}"
            )
        f = resolve_file(self.mlp_path, "aesthetic_score MLP", self.allow_download)
        mlp = AestheticMLP(load_state_dict(f)).to(self.device).eval().requires_grad_(False)
        self._load_clip(self.path, self.processor_path, "aesthetic_score CLIP")
        d = self.model.config.projection_dim
        if mlp.in_features != d:
            raise ValueError(
                f"aesthetic MLP {f} expects {mlp.in_features}-d embeddings but the CLIP model gives"
                f" {d}-d; the public head needs CLIP ViT-L/14 (768-d)"
            )
        self.mlp = mlp

    @torch.no_grad()
    def _score(self, images, captions):
        e = self.image_embeds(images)  # float32, L2-normalised, as the predictor was trained
        return self.mlp(e) / 10.0
