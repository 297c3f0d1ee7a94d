"""A minimal online system that polls the pex-tuner service over HTTP and reports results.

It asks the service for candidate policies (``next-batch``), downloads the CATE model the
policies act on (once, checked by SHA-256), "runs" each policy online with the bundled
simulator and reports the metrics back. A real system would deploy the policy to a slice of
traffic instead of calling the simulator.

    export PEX_TUNER_TOKEN=secret
    pex-tuner serve --db sqlite:///service.db &
    curl -s -X POST localhost:8000/v1/runs -H "Authorization: Bearer $PEX_TUNER_TOKEN" \\
         -H 'Content-Type: application/json' -d '{"tuner_dir": "out/tuner"}'   # -> run_id
    python examples/online_client.py --run-id RUN_ID --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import httpx

from pex_tuner.datasets import OnlineSimulator
from pex_tuner.files import atomic_write_bytes, sha256_bytes
from pex_tuner.policies import PolicyArtifact


def fetch_model(client: httpx.Client, model: dict, cache: Path) -> Path:
    """Download the model file into ``cache/<sha256>/`` once and verify its SHA-256."""
    folder = cache / model["sha256"]
    path = folder / model["file"]
    if not path.exists():
        data = client.get(model["url"]).raise_for_status().content
        if sha256_bytes(data) != model["sha256"]:
            raise RuntimeError(f"model download from {model['url']} failed its SHA-256 check")
        atomic_write_bytes(path, data)  # a unique temp file, then rename
        print(f"model     downloaded {len(data)} bytes -> {path}")
    return folder


def load_artifact(client: httpx.Client, trial: dict, cache: Path) -> PolicyArtifact:
    """Write the artifact document beside its model file and load it."""
    doc = trial["artifact"]
    folder = fetch_model(client, doc["model"], cache)
    path = folder / f"trial_{trial['trial_id']}.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return PolicyArtifact.load(path)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--token", default=os.environ.get("PEX_TUNER_TOKEN"))
    p.add_argument("--run-id", required=True)
    p.add_argument("--rounds", type=int, default=3, help="batches to test before stopping")
    p.add_argument("--batch-size", type=int, default=4, help="trials asked for per poll")
    p.add_argument("--units-per-policy", type=int, default=5000)
    p.add_argument("--max-wait", type=float, default=30.0, help="longest sleep between polls")
    p.add_argument("--cache", type=Path, default=Path(".pex_client_cache"))
    args = p.parse_args()
    if not args.token:
        p.error("pass --token or set PEX_TUNER_TOKEN")

    sim = OnlineSimulator(design_seed=0)
    run = f"/v1/runs/{args.run_id}"
    headers = {"Authorization": f"Bearer {args.token}"}
    with httpx.Client(base_url=args.url, headers=headers, timeout=60) as client:
        rounds = 0
        while rounds < args.rounds:
            r = client.post(f"{run}/next-batch", json={"size": args.batch_size, "poller": "demo"})
            body = r.raise_for_status().json()
            if not body["trials"]:
                wait = min(float(body.get("retry_after_s", 5)), args.max_wait)
                print(f"wait      {body['state']}: {body['detail']}; sleeping {wait:.0f} s")
                time.sleep(wait)
                continue
            rounds += 1
            for trial in body["trials"]:
                tid = trial["trial_id"]
                print(f"issued    trial {tid}: {trial['parameters']}")
                artifact = load_artifact(client, trial, args.cache)
                metrics = sim.run({"policy": artifact}, args.units_per_policy)["policy"]
                r = client.post(
                    f"{run}/trials/{tid}/results",
                    json={"metrics": metrics},
                    # the same key for the same report: a retry after a timeout is safe
                    headers={"Idempotency-Key": f"{args.run_id}:{tid}"},
                )
                ack = r.raise_for_status().json()
                means = ", ".join(f"{k}={v['mean']:.3f}" for k, v in metrics.items())
                print(f"reported  trial {tid}: {means} -> {ack['status']}")
        front = client.get(f"{run}/pareto").raise_for_status().json()["frontier"]
        print(f"done      {rounds} rounds; Pareto frontier: {[t['trial_id'] for t in front]}")


if __name__ == "__main__":
    main()
