"""An NVIDIA FLARE site (Client API): answer every task from this site's ``patients.csv``."""

import argparse
import json
from pathlib import Path

import nvflare.client as flare
import peer_math
from nvflare.app_common.abstract.fl_model import FLModel


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    flare.init()
    names = json.loads((Path(args.data) / "index.json").read_text(encoding="utf-8"))
    index = int(flare.get_site_name().rsplit("-", 1)[1]) - 1  # site-1 is the first site
    table = (Path(args.data) / names[index] / "patients.csv").read_bytes()
    while flare.is_running():
        task = flare.receive()
        if task is None:
            break
        if task.params["task"] == "mean":
            part = peer_math.mean_part(table)
        else:
            part = peer_math.newton_part(table, task.params["weights"])
        flare.send(FLModel(params=part))


if __name__ == "__main__":
    main()
