"""The pool runner and scorer of the face age-predictor track: N unlearned and N retrained classifiers.

    data      PoolData (the four splits) and the fixed retain / test sample
    hashing   what identifies a member: data, weights, settings, the imgunlearn code and a user's source
    store     member files, manifests, reading members back (layout in its docstring)
    shards    --shard i/n, --shard auto (torchrun / SLURM), devices per job
    runner    jobs, seeds, devices, resuming, `run_pool`
    score     `load_pool`, `score_members` (ε forget score, final score, KLoM, ToW), `score_pool`

Everything public is importable from `imgunlearn.challenge.pool` directly.
"""

from imgunlearn.challenge.pool.data import SAMPLE_SIZE, SAMPLED_SPLITS, SPLITS, PoolData, sample_indices
from imgunlearn.challenge.pool.hashing import (
    code_digest,
    derive_seed,
    hash_callable,
    hash_dataset,
    hash_json,
    hash_state_dict,
)
from imgunlearn.challenge.pool.runner import (
    MemberJob,
    RetrainFn,
    RunSummary,
    UnlearningFn,
    evaluate_member,
    retrain_job,
    run_members,
    run_pool,
    unlearn_job,
)
from imgunlearn.challenge.pool.score import klom_summary, load_pool, score_members, score_pool, tow_score
from imgunlearn.challenge.pool.shards import (
    job_devices,
    local_device,
    parse_shard,
    resolve_shard,
    shard_from_env,
    shard_indices,
)
from imgunlearn.challenge.pool.store import (
    METHOD_MANIFEST,
    ORIGINAL,
    POOL_MANIFEST,
    RETRAIN_METHOD,
    RETRAINED,
    SCORE_NAME,
    TIME_CUTOFF,
    UNLEARNED,
    PoolMembers,
    load_members,
    member_path,
    method_slug,
    pool_methods,
    read_manifest,
    read_member,
    write_member,
)
from imgunlearn.challenge.training import predict, seeded, split_batch

__all__ = [
    "METHOD_MANIFEST", "ORIGINAL", "POOL_MANIFEST", "RETRAINED", "RETRAIN_METHOD", "SAMPLED_SPLITS", "SAMPLE_SIZE",
    "SCORE_NAME", "SPLITS", "TIME_CUTOFF", "UNLEARNED", "MemberJob", "PoolData", "PoolMembers", "RetrainFn",
    "RunSummary", "UnlearningFn", "code_digest", "derive_seed", "evaluate_member", "hash_callable", "hash_dataset",
    "hash_json", "hash_state_dict", "job_devices", "klom_summary", "load_members", "load_pool", "local_device",
    "member_path", "method_slug", "parse_shard", "pool_methods", "predict", "read_manifest", "read_member",
    "resolve_shard", "retrain_job", "run_members", "run_pool", "sample_indices", "score_members", "score_pool",
    "seeded", "shard_from_env", "shard_indices", "split_batch", "tow_score", "unlearn_job", "write_member",
]
