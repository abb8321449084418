"""`rewardflow ui`: a local web page to dial rewards on any model rewardflow loads.

Binds to 127.0.0.1 unless told otherwise. One generation runs at a time; a few more wait in a
queue; requests beyond the limits (steps, images, best-of N, prompt length) are refused with a
message in the page.
"""

from __future__ import annotations

import argparse
import time

from rewardflow.commands._common import load_pipeline


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "ui", help="a local web page to dial rewards", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("--model", required=True, help="pipeline folder, hub id (HF cache), checkpoint or run dir")
    p.add_argument("--variant", default=None, help="a subfolder of --model (the released ablations)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    p.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    p.add_argument(
        "--score",
        default="auto",
        help="rewards to measure every image with: auto (the model's rewards that are registered), none, "
        "or a comma-separated list of registered rewards ('paper': the paper's seven)",
    )
    p.add_argument("--max-steps", type=int, default=100, help="most ODE steps a request may ask (default 100)")
    p.add_argument("--max-images", type=int, default=4, help="most images per request (default 4)")
    p.add_argument("--max-best-of", type=int, default=8, help="largest best-of N (default 8)")
    p.add_argument("--max-prompt-chars", type=int, default=500, help="longest prompt (default 500 characters)")
    p.add_argument("--allow-download", action="store_true", help="let hub ids download (off: HF cache only)")
    p.set_defaults(func=run)


def scorers(spec: str, reward_keys, device: str) -> dict:
    from rewardflow.rewards import get_reward, list_rewards
    from rewardflow.rewards.registry import parse_reward_list
    from rewardflow.utils.errors import LicenseNotAccepted

    if spec == "none":
        return {}
    if spec == "auto":
        names = [k for k in reward_keys if k in list_rewards()]
    else:
        names = parse_reward_list(spec)
    out = {}
    for n in names:
        try:
            try:
                out[n] = get_reward(n, device=device)
            except TypeError:  # a built-in reward takes no device
                out[n] = get_reward(n)
        except LicenseNotAccepted as exc:
            if spec != "auto":
                raise
            print(f"not measuring {n}: {str(exc).split('. ')[0]} (see its opt-in in docs/REWARD_BACKENDS.md)")
    return out


def run(args) -> int:
    from rewardflow.ui import Limits, Studio, serve

    pipe = load_pipeline(args.model, args.device, args.allow_download, args.variant)
    limits = Limits(args.max_steps, args.max_images, args.max_prompt_chars, args.max_best_of)
    studio = Studio(pipe, args.model, limits, scorers(args.score, pipe.reward_keys, args.device), args.variant)
    server = serve(studio, args.host, args.port)
    host, port = server.server_address[:2]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: anyone who can reach this machine can use the model")
    print(f"rewardflow ui: http://{host}:{port}/  (Ctrl-C to stop)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.shutdown()
    return 0
