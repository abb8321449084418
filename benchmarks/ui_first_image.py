"""Time to the first image in `rewardflow ui`: start the page's server on a model exactly as the
command does, send the request the page sends with its defaults (the first example prompt, the
model's saved steps and guidance, one image), and time the answer; then the median of a few more.

    python benchmarks/ui_first_image.py --model runs/demo/models/miro     # goal: first image < 5 s

Prints the load average and thread count beside the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import urllib.request

import torch


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from rewardflow.commands._common import load_pipeline
    from rewardflow.commands.ui import scorers
    from rewardflow.ui import Studio, serve

    t0 = time.perf_counter()
    pipe = load_pipeline(args.model)
    studio = Studio(pipe, args.model, scorers=scorers("auto", pipe.reward_keys, "cpu"))
    server = serve(studio, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    load_s = time.perf_counter() - t0
    with urllib.request.urlopen(base + "/api/info") as r:
        info = json.loads(r.read())
    body = {"prompt": info["examples"][0], "steps": info["defaults"]["num_inference_steps"]}
    body |= {"guidance": info["defaults"]["guidance_scale"], "num_images": 1}
    t1 = time.perf_counter()
    first = post(base + "/api/generate", body)
    first_s = time.perf_counter() - t1
    warm = []
    for i in range(args.repeats):
        t = time.perf_counter()
        post(base + "/api/generate", dict(body, seed=i + 1))
        warm.append(time.perf_counter() - t)
    server.shutdown()
    print(f"load average {os.getloadavg()[0]:.2f}, {torch.get_num_threads()} threads; model {args.model}")
    print(f"defaults: {body['steps']} steps, guidance {body['guidance']}, prompt {body['prompt']!r}")
    print(f"model load + server start: {load_s:.2f} s")
    print(f"first image (request to answer, scores included): {first_s:.2f} s (server-side {first['seconds']:.2f} s)")
    print(f"next images: median {statistics.median(warm):.2f} s over {args.repeats}")


if __name__ == "__main__":
    main()
