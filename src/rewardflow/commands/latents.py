"""`rewardflow latents encode`: precompute VAE latents into shards (optional latent space)."""

from __future__ import annotations

import argparse


def register(sub) -> None:
    p = sub.add_parser(
        "latents",
        help="precompute VAE latents for latent-space training (needs the [latent] extra)",
        description="Latent-space training support. Pixel space is the default and needs none of this.",
    )
    lsub = p.add_subparsers(dest="latents_command", metavar="<action>")
    e = lsub.add_parser(
        "encode",
        help="copy shards with {key}.latent.safetensors added and write latent_stats.json",
        description=(
            "Encode every image of a shard dataset with a diffusers AutoencoderKL and write new shards "
            "(same names, all original members plus {key}.latent.safetensors) to --out, together with "
            "the score Parquet files, bins.json and per-channel latent statistics (latent_stats.json) used "
            "to normalise latents. Re-running resumes: finished shards in --out are kept."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    e.add_argument("--data", required=True, help="input dataset directory with NNNNN.tar shards")
    e.add_argument("--out", required=True, help="output directory for the shards with latents")
    e.add_argument(
        "--vae",
        required=True,
        help="AutoencoderKL: a local directory (a pipeline folder with vae/ works too) or a hub id",
    )
    e.add_argument("--batch-size", type=int, default=32, help="images per VAE forward")
    e.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="resize the short side and centre-crop to this size before encoding (default: as stored)",
    )
    e.add_argument(
        "--store-dtype",
        choices=("float16", "bfloat16", "float32"),
        default="float16",
        help="dtype of the stored latents",
    )
    e.add_argument("--device", default="cpu", help="device for the VAE, e.g. cuda")
    e.add_argument(
        "--sample", action="store_true", help="store a sample of the posterior instead of its mean (seeded with --seed)"
    )
    e.add_argument("--seed", type=int, default=0, help="seed for --sample")
    e.add_argument("--allow-download", action="store_true", help="allow fetching the VAE from the Hugging Face Hub")
    e.set_defaults(func=_encode)
    p.set_defaults(func=lambda args: p.print_help() or 2)


def _encode(args) -> int:
    import torch

    from rewardflow.data.latents import encode_shards, load_vae, vae_encode

    try:
        vae = load_vae(args.vae, allow_download=args.allow_download, device=args.device)
    except ImportError as exc:  # the optional extra is missing: a message, not a traceback
        print(f"rewardflow latents: error: {exc}")
        return 1
    gen = torch.Generator(device=args.device).manual_seed(args.seed) if args.sample else None
    stats = encode_shards(
        args.data,
        args.out,
        lambda x: vae_encode(vae, x, sample=args.sample, generator=gen),
        batch_size=args.batch_size,
        image_size=args.image_size,
        store_dtype=getattr(torch, args.store_dtype),
        vae_name=str(args.vae),
    )
    print(
        f"encoded {stats.count} images; channel mean {[round(m, 4) for m in stats.mean]}, "
        f"std {[round(s, 4) for s in stats.std]} -> {args.out}/latent_stats.json"
    )
    return 0
