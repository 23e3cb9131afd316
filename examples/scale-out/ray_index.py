"""A sharded indexing job on Ray: one GPU task per shard, then one commit.

    python ray_index.py /data/repos s3://my-bucket/lancet/db --shards 8

Each task runs `lancet index --shard I/N` (the `lancet` binary on every node); Ray
retries a failed task, and a shard run again replaces what it staged. The driver commits
once every task has returned: one atomic commit, which adds nothing if run twice.
"""

import argparse
import datetime
import glob
import subprocess

import ray


@ray.remote(num_gpus=1, max_retries=3)
def index_shard(roots, db, stage, shard, shards):
    subprocess.run(
        ["lancet", "index", *roots, "--device", "cuda", "--db", db,
         "--stage", stage, "--shard", f"{shard}/{shards}", "--json"],
        check=True,
        capture_output=True,
    )
    return shard


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("repos", help="folder holding one folder per repository")
    parser.add_argument("db", help="database: a folder or an s3://, gs://, az:// URI")
    parser.add_argument("--shards", type=int, default=8)
    args = parser.parse_args()
    roots = sorted(glob.glob(f"{args.repos.rstrip('/')}/*/"))
    stage = f"{args.db.rstrip('/')}-stage/{datetime.datetime.now():%Y%m%d-%H%M%S}"
    ray.init()
    done = ray.get([index_shard.remote(roots, args.db, stage, i, args.shards)
                    for i in range(args.shards)])
    print(f"shards {sorted(done)} staged in {stage}")
    subprocess.run(["lancet", "commit", "--db", args.db, "--stage", stage], check=True)


if __name__ == "__main__":
    main()
