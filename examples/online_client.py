"""A minimal online system that polls the pex-tuner service and reports results, with
:class:`pex_tuner.client.Client` (retries, Retry-After and Idempotency-Keys handled for you).

It asks the service for candidate policies, downloads the CATE model the policies act on (once,
checked by SHA-256), "runs" each policy online with the bundled simulator and reports the
metrics back. A real system would deploy the policy to a slice of traffic instead.

    export PEX_TUNER_TOKEN=secret
    pex-tuner serve --db sqlite:///service.db --runs-root out &
    python examples/online_client.py --tuner-dir tuner --rounds 3   # creates a run, or
    python examples/online_client.py --run-id RUN_ID --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from pex_tuner.client import Client
from pex_tuner.datasets import OnlineSimulator
from pex_tuner.files import atomic_write_bytes, sha256_bytes
from pex_tuner.policies import PolicyArtifact

#: the run's objectives: the offline ones plus the online-only long-term outcome
ONLINE_OBJECTIVES = {"engagement": "max", "retention": "max", "cost": "min", "long_term": "max"}


def load_artifact(tuner: Client, trial: dict, cache: Path) -> PolicyArtifact:
    """Write the trial's artifact beside its model file (downloaded once, verified) and load
    it."""
    doc = trial["artifact"]
    model = doc["model"]
    folder = cache / model["sha256"]
    if not (folder / model["file"]).exists():
        data = tuner.model_bytes(model["url"])
        if sha256_bytes(data) != model["sha256"]:
            raise RuntimeError(f"model download from {model['url']} failed its SHA-256 check")
        atomic_write_bytes(folder / model["file"], data)
    path = folder / f"trial_{trial['trial_id']}.json"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    return PolicyArtifact.load(path)


def main() -> None:
    """Poll, run, report: ``--rounds`` batches."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", default="http://127.0.0.1:8000")
    p.add_argument("--token", default=os.environ.get("PEX_TUNER_TOKEN"))
    p.add_argument("--run-id", help="an existing run (else --tuner-dir creates one)")
    p.add_argument("--tuner-dir", help="a saved offline tuner under the server's runs root")
    p.add_argument("--rounds", type=int, default=3, help="batches to test before stopping")
    p.add_argument("--batch-size", type=int, default=4, help="trials asked for per poll")
    p.add_argument("--units-per-policy", type=int, default=5000)
    p.add_argument("--cache", type=Path, default=Path(".pex_client_cache"))
    args = p.parse_args()
    if not args.token or not (args.run_id or args.tuner_dir):
        p.error("pass --token (or set PEX_TUNER_TOKEN) and --run-id or --tuner-dir")

    sim = OnlineSimulator(design_seed=0)
    with Client(args.url, args.token) as tuner:
        # the simulator also reports a long-term outcome offline OPE never saw: declare it
        run_id = args.run_id or tuner.create_run(
            args.tuner_dir, n_candidates=args.batch_size, objectives=ONLINE_OBJECTIVES
        )
        for _ in range(args.rounds):
            trials = tuner.get_next_trials(run_id, args.batch_size, poller="demo", wait=True)
            arts = {t["trial_id"]: load_artifact(tuner, t, args.cache) for t in trials}
            results = sim.run({str(tid): a for tid, a in arts.items()}, args.units_per_policy)
            for tid in arts:
                ack = tuner.complete_trial(run_id, tid, results[str(tid)])
                means = ", ".join(f"{k}={v['mean']:.3f}" for k, v in results[str(tid)].items())
                print(f"trial {tid}: {means} -> {ack['status']}")
        front = [t["trial_id"] for t in tuner.get_pareto_frontier(run_id)]
        print(f"run {run_id}: {args.rounds} rounds; Pareto frontier {front}")


if __name__ == "__main__":
    main()
