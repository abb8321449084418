"""The web page's HTTP API on a tiny pipeline: info, generation with its scores and reproducing
command, every bad input a 4xx with a message, one generation at a time."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request

import pytest

from rewardflow.commands.ui import scorers
from rewardflow.ui import Limits, Studio, serve


@pytest.fixture
def server(pipe):
    pipe.config["run_config"] = {"reward_dropout": 0.0}  # its null reward tokens are untrained
    studio = Studio(pipe, "runs/tiny", Limits(max_steps=8, max_images=2, max_prompt_chars=40, max_queue=1))
    studio.scorers = scorers("auto", pipe.reward_keys, "cpu")
    srv = serve(studio, "127.0.0.1", 0)
    yield f"http://127.0.0.1:{srv.server_address[1]}", studio
    srv.shutdown()


def call(url, path, body=None):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    req = urllib.request.Request(url + path, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_info_and_a_generation_with_scores_and_the_reproducing_calls(server):
    url, _ = server
    status, info = call(url, "/api/info")
    assert status == 200 and info["reward_keys"] == ["sharpness", "colorfulness"] and info["scorers"]
    assert info["defaults"]["num_inference_steps"] == 3 and len(info["examples"]) == 6
    body = {"prompt": "a red circle", "steps": 3, "seed": 5, "num_images": 2, "mode": "custom", "guidance": 2.5}
    body |= {"positive": {"sharpness": 0.75, "colorfulness": 1.0}, "negative": {"sharpness": 0.0}}
    status, res = call(url, "/api/generate", body)
    assert status == 200, res
    assert len(res["images"]) == 2 and res["images"][0].startswith("data:image/png;base64,")
    assert res["seeds"] == [5, 6] and set(res["scores"][0]) == {"sharpness", "colorfulness"}
    assert res["targets"]["positive"] == {"sharpness": 0.75, "colorfulness": 1.0}
    assert res["targets"]["negative"] == {"sharpness": 0.0, "colorfulness": 0.0}
    assert "rewardflow sample --model runs/tiny" in res["command"] and "--seed 5" in res["command"]
    assert "sharpness=0.75" in res["command"] and "num_images_per_prompt=2" in res["python"]
    assert "--guidance 2.5" in res["command"] and "guidance_scale=2.5" in res["python"]
    # the page's request again gives the same pixels; isolate / pairwise / best-of run too
    assert call(url, "/api/generate", body)[1]["images"] == res["images"]
    for extra in ({"mode": "isolate", "isolate": "sharpness", "anchor": {"colorfulness": 0.5}},
                  {"mode": "pairwise", "pair_a": "sharpness", "pair_b": "colorfulness", "pair_t": 0.25},
                  {"best_of": 3, "select": "sharpness", "solver": "heun"}):  # fmt: skip
        status, out = call(url, "/api/generate", {"prompt": "two squares", "steps": 2, **extra})
        assert status == 200 and len(out["images"]) == 1, out


@pytest.mark.parametrize(
    "body,status,message",
    [
        ({"prompt": "  "}, 400, "prompt is empty"),
        ({"prompt": "x" * 41}, 400, "at most 40"),
        ({"prompt": "a", "steps": 9}, 400, r"steps must lie in \[1, 8\]"),
        ({"prompt": "a", "steps": "many"}, 400, "steps must be a number"),
        ({"prompt": "a", "num_images": 3}, 400, "num_images must lie"),
        ({"prompt": "a", "guidance": float("inf")}, 400, "guidance must be a number"),
        ({"prompt": "a", "positive": {"aesthetic": 1}}, 400, "unknown reward 'aesthetic'"),
        ({"prompt": "a", "positive": {"sharpness": 1.5}}, 400, r"must lie in \[0, 1\]"),
        ({"prompt": "a", "mode": "isolate", "isolate": "nope"}, 400, "isolate must be one of"),
        ({"prompt": "a", "positive": {"sharpness": None}}, 400, "unspecified"),
        (
            {"prompt": "a", "mode": "isolate", "isolate": "sharpness", "anchor": {"colorfulness": None}},
            400,
            "unspecified",
        ),
        ({"prompt": "a", "mode": "isolate", "isolate": "sharpness", "anchor": {"colorfulness": 2}}, 400, r"\[0, 1\]"),
        ({"prompt": "a", "resolution": 512}, 400, "32x32"),
        ({"prompt": "a", "solver": "rk4"}, 400, "solver must be one of"),
        ([1, 2], 400, "JSON object"),
        (b"{not json", 400, "not JSON"),
        (b"x" * 70000, 413, "over"),
    ],
)
def test_bad_input_is_a_4xx_with_a_message(server, body, status, message):
    import re

    url, _ = server
    code, res = call(url, "/api/generate", body)
    assert code == status and re.search(message, res["error"]), res
    assert call(url, "/nope")[0] == 404


def test_one_generation_at_a_time_and_a_full_queue_says_busy(server):
    url, studio = server
    gate, entered = threading.Event(), threading.Event()
    real = studio._generate

    def slow(req):
        entered.set()
        gate.wait(30)
        return real(req)

    studio._generate = slow
    results = []
    threads = [threading.Thread(target=lambda: results.append(call(url, "/api/generate", {"prompt": "a", "steps": 1})))]
    threads[0].start()
    assert entered.wait(30) and call(url, "/api/progress")[1]["busy"] is True
    threads.append(
        threading.Thread(target=lambda: results.append(call(url, "/api/generate", {"prompt": "b", "steps": 1})))
    )
    threads[1].start()
    for _ in range(200):  # the second request waits in the queue (max_queue=1)
        if call(url, "/api/progress")[1]["waiting"] == 1:
            break
        threading.Event().wait(0.01)
    code, res = call(url, "/api/generate", {"prompt": "c", "steps": 1})
    assert code == 503 and "waiting" in res["error"]
    gate.set()
    for t in threads:
        t.join(60)
    assert sorted(r[0] for r in results) == [200, 200]


def test_the_command_and_the_python_call_reproduce_the_page(saved, tmp_path):
    """What the page prints, run as printed, gives the page's pixels."""
    import base64
    import io
    import shlex

    import numpy as np
    from PIL import Image

    from rewardflow.cli import main
    from rewardflow.sampling.pipeline import RewardFlowPipeline

    studio = Studio(RewardFlowPipeline.from_pretrained(saved), saved)
    body = {"prompt": "a red circle", "steps": 3, "seed": 7, "mode": "isolate", "isolate": "sharpness"}
    res = studio.generate(body | {"anchor": {"colorfulness": 0.25}, "guidance": 3.0, "solver": "heun"})
    page = np.asarray(Image.open(io.BytesIO(base64.b64decode(res["images"][0].split(",")[1]))))
    args = shlex.split(res["command"])
    assert args[:2] == ["rewardflow", "sample"] and args[-2:] == ["--out", "samples/"]
    assert main(args[1:-1] + [str(tmp_path / "cli")]) == 0
    cli = np.asarray(Image.open(tmp_path / "cli" / "images" / "00000.png"))
    assert np.array_equal(cli, page)
    scope: dict = {}
    exec(res["python"], scope)  # noqa: S102 (the page's own output, run as a user would)
    assert np.array_equal(np.asarray(scope["images"][0]), page)


def test_the_command_serves_a_saved_model(saved):
    """`rewardflow ui --model DIR --port 0` prints its address and answers there."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "rewardflow.cli", "ui", "--model", saved, "--port", "0", "--score", "sharpness"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("rewardflow ui: http://127.0.0.1:"), line
        url = line.split()[2].rstrip("/")
        status, info = call(url, "/api/info")
        assert status == 200 and info["scorers"] == ["sharpness"] and info["model"] == saved
    finally:
        proc.terminate()
        proc.wait(30)


def test_auto_scoring_skips_a_licence_not_accepted(monkeypatch, capsys):
    for env in ("REWARDFLOW_ACCEPT_JINA_LICENSE", "REWARDFLOW_TRUST_REMOTE_CODE"):
        monkeypatch.delenv(env, raising=False)
    assert list(scorers("auto", ["clip_score", "sharpness"], "cpu")) == ["sharpness"]
    assert "not measuring clip_score: clip_score uses jina-clip-v2" in capsys.readouterr().out
    with pytest.raises(PermissionError, match="accept_license"):
        scorers("clip_score", ["clip_score"], "cpu")
