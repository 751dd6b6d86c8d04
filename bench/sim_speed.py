"""How fast the deterministic simulation runs: simulated seconds per wall-clock second.

5 nodes, the register workload, partitions and kills. Prints one JSON line per
configuration (messages per simulated second, ops, speed-up over real time) and the
target from issue 5: a prototype reached about 70x at about 200 messages per simulated
second; raftlab aims above 100x.

    python3 bench/sim_speed.py [--time 120] [--seed 1]
"""

from __future__ import annotations

import argparse
import json

from campaign.sim.run import SimConfig, run_simulation

PROTOTYPE_SPEEDUP = 70.0
TARGET_SPEEDUP = 100.0


def measure(label: str, config: SimConfig) -> dict:
    outcome = run_simulation(config)
    speedup = outcome.simulated_seconds / outcome.wall_seconds
    return {
        "config": label,
        "nodes": config.nodes,
        "workload": config.workload,
        "nemesis": config.nemesis,
        "rate": config.rate,
        "simulated_s": round(outcome.simulated_seconds, 1),
        "wall_s": round(outcome.wall_seconds, 2),
        "speedup": round(speedup, 1),
        "messages_per_sim_s": round(outcome.messages / outcome.simulated_seconds, 1),
        "ops": len(outcome.ops),
        "valid": outcome.valid,
        "vs_prototype": round(speedup / PROTOTYPE_SPEEDUP, 2),
        "vs_target": round(speedup / TARGET_SPEEDUP, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=float, default=120.0, help="simulated seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    base = dict(
        seed=args.seed,
        time=args.time,
        nodes=5,
        workload="register",
        nemesis="partition,kill",
        nemesis_interval=5.0,
    )
    for label, rate in (("light (≈200 msg/s)", 5.0), ("moderate", 20.0), ("busy", 100.0)):
        print(json.dumps(measure(label, SimConfig(rate=rate, **base))), flush=True)


if __name__ == "__main__":
    main()
