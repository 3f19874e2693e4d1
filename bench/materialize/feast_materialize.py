#!/usr/bin/env python3
"""Time Feast 0.67's `FeatureStore.materialize(START, END)` on a repo.

Run by run.sh under `/usr/bin/time -v` (for peak RSS) with the Feast venv:

  feast_materialize.py REPO_DIR START END

Prints one JSON line: {"seconds": <time spent inside materialize()>}.
Python start-up and `import feast` (several seconds) are not counted, which
favours Feast in the comparison.
"""
import datetime as dt
import json
import sys
import time


def parse(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def main() -> None:
    repo, start, end = sys.argv[1], parse(sys.argv[2]), parse(sys.argv[3])
    from feast import FeatureStore

    store = FeatureStore(repo_path=repo)
    t0 = time.perf_counter()
    store.materialize(start_date=start, end_date=end)
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": seconds}))


if __name__ == "__main__":
    main()
