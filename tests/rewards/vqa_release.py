"""A tiny random CLIP-FlanT5 saved as the VQAScore release is: a T5 config with the mm_* fields
and two torch weight shards holding the T5, `mm_projector.*`, `vision_tower.vision_tower.*` and
the extra `embed_tokens` name; its CLIP tower also saved on its own (config + processor)."""

from __future__ import annotations

import json

import torch

TOWER = "openai/clip-vit-large-patch14-336"


def write_release(root, vocab, extra_rows: int = 8, tower_ref: str = TOWER):
    """-> (checkpoint dir, tower dir, t5, vision model, projector), the modules in eval mode."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, T5Config, T5ForConditionalGeneration

    torch.manual_seed(0)
    # FLAN-T5's embedding has padding rows beyond its tokenizer (32,128 vs 32,100): so does this one
    t5cfg = dict(
        vocab_size=vocab + extra_rows, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_decoder_layers=1, num_heads=2
    )
    t5 = T5ForConditionalGeneration(T5Config(**t5cfg, decoder_start_token_id=0, pad_token_id=0))
    vcfg = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32)
    vis = CLIPVisionModel(CLIPVisionConfig(**vcfg, patch_size=8))
    proj = torch.nn.Sequential(torch.nn.Linear(32, 16), torch.nn.GELU(), torch.nn.Linear(16, 16))
    with torch.no_grad():
        for m in (t5, vis, proj):
            for p in m.parameters():
                p.add_(0.2 * torch.randn_like(p))
        t5.lm_head.weight.mul_(4)  # sharper answer distributions: the score then moves with its inputs
    tower = root / "tower"
    vis.save_pretrained(tower)
    CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(tower)
    sd = {k: v.clone() for k, v in t5.state_dict().items()}
    sd["embed_tokens.weight"] = sd["shared.weight"].clone()  # the release keeps a second name for it
    sd.update({f"mm_projector.{k}": v for k, v in proj.state_dict().items()})
    # as transformers 4 named the tower's tensors when the release was saved
    sd.update({f"vision_tower.vision_tower.vision_model.{k}": v for k, v in vis.state_dict().items()})
    ckpt = root / "clip-flant5"
    ckpt.mkdir()
    keys = sorted(sd)
    weight_map = {}
    for i, part in enumerate((keys[: len(keys) // 2], keys[len(keys) // 2 :])):
        name = f"pytorch_model-0000{i + 1}-of-00002.bin"
        torch.save({k: sd[k] for k in part}, ckpt / name)
        weight_map.update(dict.fromkeys(part, name))
    index = {
        "metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
        "weight_map": weight_map,
    }
    (ckpt / "pytorch_model.bin.index.json").write_text(json.dumps(index))
    cfg = t5.config.to_dict() | {"model_type": "clip_t5", "architectures": ["CLIPT5ForConditionalGeneration"]}
    cfg |= {"mm_vision_tower": tower_ref, "mm_hidden_size": 32, "mm_projector_type": "mlp2x_gelu"}
    cfg |= {"mm_vision_select_layer": -2, "mm_vision_select_feature": "patch"}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    return ckpt, tower, t5.eval(), vis.eval(), proj.eval()
