#!/usr/bin/env bash
# A sharded indexing job on Slurm: one array task per shard (SLURM_ARRAY_TASK_ID becomes
# `--shard I/N`), then a commit that starts only when every task has succeeded.
#
#   ./slurm-array.sh /data/repos s3://my-bucket/lancet/db 16
#
# A failed task can be resubmitted alone (`sbatch --array=5 ...`): it replaces what it
# staged. The commit refuses while a shard is missing and adds nothing when run twice.
set -euo pipefail
repos=${1:?repositories folder}
db=${2:?database (folder or s3://, gs://, az:// URI)}
shards=${3:-8}
stage="${db%/}-stage/$(date +%Y%m%d-%H%M%S)"

shard_job=$(sbatch --parsable --array="0-$((shards - 1))" --gres=gpu:1 --cpus-per-task=8 \
  --job-name=lancet-shard --wrap="lancet index $repos/* --device cuda --db $db \
    --stage $stage --shard \${SLURM_ARRAY_TASK_ID}/$shards")
sbatch --dependency="afterok:$shard_job" --job-name=lancet-commit \
  --wrap="lancet commit --db $db --stage $stage"
echo "shards: job $shard_job; stage: $stage"
