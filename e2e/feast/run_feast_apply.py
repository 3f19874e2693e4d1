#!/usr/bin/env python3
"""Copy feast_repo/ into REPO_COPY_DIR, write its data and feature_store.yaml, run `feast apply`.

Usage (with the Feast 0.67 venv python, TZ=UTC):
  run_feast_apply.py REPO_COPY_DIR REGISTRY_TYPE REGISTRY_PATH [--project growth]

  REGISTRY_TYPE  sql | file
  REGISTRY_PATH  sql:  a SQLAlchemy URL, e.g. postgresql+psycopg://root@127.0.0.1:5432/reg
                 file: a registry file path (relative = relative to REPO_COPY_DIR)

The `feast` executable is taken from the directory of this python (the venv's
bin/), falling back to PATH. Exit status is feast's. Prints `feast apply took
<seconds>s` on success.
"""
import argparse
import os
import pathlib
import shutil
import string
import subprocess
import sys
import time

HERE = pathlib.Path(__file__).resolve().parent
SRC = HERE / "feast_repo"
REPO_FILES = ["feature_repo.py", "make_data.py", ".feastignore"]


def feast_executable() -> str:
    candidate = pathlib.Path(sys.executable).parent / "feast"
    if candidate.exists():
        return str(candidate)
    found = shutil.which("feast")
    if not found:
        sys.exit("run_feast_apply: no `feast` executable next to python or on PATH")
    return found


def main() -> int:
    ap = argparse.ArgumentParser(description="Run `feast apply` on a copy of e2e/feast/feast_repo")
    ap.add_argument("repo_copy_dir", type=pathlib.Path)
    ap.add_argument("registry_type", choices=["sql", "file"])
    ap.add_argument("registry_path")
    ap.add_argument("--project", default="growth")
    args = ap.parse_args()

    dest = args.repo_copy_dir.resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for name in REPO_FILES:
        shutil.copy2(SRC / name, dest / name)
    subprocess.run([sys.executable, str(dest / "make_data.py"), str(dest)], check=True)

    template = string.Template((SRC / "feature_store.yaml.tmpl").read_text())
    (dest / "feature_store.yaml").write_text(
        template.substitute(
            PROJECT=args.project,
            REGISTRY_TYPE=args.registry_type,
            REGISTRY_PATH=args.registry_path,
        )
    )

    env = dict(os.environ, TZ="UTC", FEAST_USAGE="False")
    start = time.monotonic()
    proc = subprocess.run([feast_executable(), "apply"], cwd=dest, env=env)
    elapsed = time.monotonic() - start
    if proc.returncode != 0:
        print(f"run_feast_apply: feast apply failed with status {proc.returncode}", file=sys.stderr)
        return proc.returncode
    print(f"feast apply took {elapsed:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
