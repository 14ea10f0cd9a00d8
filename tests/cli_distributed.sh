#!/usr/bin/env bash
# cli_distributed.sh: data-parallel training (src/distributed.c) through the
# real binary under Open MPI's mpirun, on the CPU:
#   mpirun -np 2 equals one process with the same global batch (the loss curve
#     and the final parameters, within a float tolerance: the sums run in
#     another order), for an even split and for a batch that does not divide
#     (shards 50 + 49, one epoch) with free bits (KL statistics reduced) and dynamic binarization
#   --resume across a change of N (2 -> 1 and 1 -> 2 ranks)
#   made (4 mask sets, random order) and pixelcnn: 2 ranks == one process
#   refusals: a kind that is not data-parallel yet, batch norm, a command other than train, ranks
#     launched with other settings (the line that differs named) or reading other data
#   a pixelcnn prior whose VQ-VAE each rank reads from its own copy (model.prior_of paths differ)
#   a rank killed mid-run ends the run with an error, the folder stays resumable;
#     a rank that hangs is caught by the collective timeout (CUVAE_DIST_TIMEOUT)
#   SIGTERM to mpirun: one resume point, --resume continues bit-exactly; stopped between two
#     log reads, the resumed log is the uninterrupted run's (every rank's pending loss sums, once)
#   the NCCL path with one rank on the emulated CUDA device (bit-exact with the
#     single process: a one-rank all-reduce is the identity)
cd "$(dirname "$0")/.."
. tests/lib_cli.sh
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
if [ ! -s data/mnist/train-images-idx3-ubyte.gz ]; then
    skip "data-parallel tests" "data/mnist missing (run make data)"; cli_finish cli_distributed; exit
fi
# ---- launched without MPI (srun without MPI support, or CUVAE_RANK / CUVAE_WORLD_SIZE) ----
expect_error "without MPI: the CPU backend is refused" 2 "launched as 2 ranks without MPI: only the CUDA backend \(NCCL\)" -- \
    env CUVAE_WORLD_SIZE=2 CUVAE_RANK=0 CUVAE_NCCL_ID_FILE="$tmp/id" "$CUVAE" train configs/examples_vae.json \
        --set device=cpu --set data.train_limit=200 --set data.test_limit=100 --out "$tmp/nompi_cpu"
expect_error "without MPI and without an id file, on the CPU: the CPU's reason first (not the id file)" 2 \
    "launched as 2 ranks without MPI: only the CUDA backend \(NCCL\)" -- \
    env CUVAE_WORLD_SIZE=2 CUVAE_RANK=1 "$CUVAE" train configs/examples_vae.json --set device=cpu --out "$tmp/nompi_cpu"
expect_error "without MPI, device auto on a machine without a GPU: why CUDA failed, and that the CPU needs MPI" 2 \
    "device auto: CUDA is unusable \((no NVIDIA GPU/driver found|this cuvae was built without CUDA).*\), and launched as 2 ranks without MPI only the CUDA backend \(NCCL\) trains" -- \
    env CUVAE_WORLD_SIZE=2 CUVAE_RANK=1 "$CUVAE" train configs/examples_vae.json --set device=auto --out "$tmp/nompi_cpu"
expect_error "without MPI: a rank outside the world" 2 "want CUVAE_RANK in \[0, CUVAE_WORLD_SIZE\).*got rank 5 of 2" -- \
    env CUVAE_WORLD_SIZE=2 CUVAE_RANK=5 CUVAE_NCCL_ID_FILE="$tmp/id" "$CUVAE" train configs/examples_vae.json --out "$tmp/x"
expect_error "without MPI: a world size that is not a number" 2 "cuvae: CUVAE_WORLD_SIZE=abc: not a whole number >= 0" -- \
    env CUVAE_WORLD_SIZE=abc CUVAE_RANK=0 "$CUVAE" train configs/examples_vae.json --out "$tmp/launch"
expect_error "without MPI: a negative world size" 2 "cuvae: CUVAE_WORLD_SIZE=-1: not a whole number >= 0" -- \
    env CUVAE_WORLD_SIZE=-1 CUVAE_RANK=0 "$CUVAE" train configs/examples_vae.json --out "$tmp/launch"
expect_error "without MPI: a rank without a world size (it would train alone)" 2 \
    "cuvae: CUVAE_RANK=1 is set but CUVAE_WORLD_SIZE is not" -- \
    env CUVAE_RANK=1 "$CUVAE" train configs/examples_vae.json --out "$tmp/launch"
expect_error "without MPI: a world size without a rank, said so (not 'rank -1')" 2 \
    "launched as ranks without MPI: CUVAE_WORLD_SIZE is set \(1\) but CUVAE_RANK is not" -- \
    env CUVAE_WORLD_SIZE=1 "$CUVAE" train configs/examples_vae.json --out "$tmp/launch"
for cmd in eval sample plot report bench; do   # the reason that stands, before any variable's advice
    expect_error "without MPI: cuvae $cmd as ranks says only train runs data-parallel" 2 \
        "launched as 2 ranks: only \`cuvae train\` runs data-parallel; run \`cuvae $cmd\` as one process" -- \
        env CUVAE_WORLD_SIZE=2 CUVAE_RANK=0 "$CUVAE" $cmd "$tmp/whatever"
done
expect_error "srun: a task count that is not a number" 2 "cuvae: SLURM_STEP_NUM_TASKS=abc: not a whole number >= 0" -- \
    env SLURM_PROCID=0 SLURM_STEP_NUM_TASKS=abc "$CUVAE" train configs/examples_vae.json --out "$tmp/launch"
[ ! -e "$tmp/launch" ] && ok "... none of the refused launches created the run folder" || bad "a refused launch created $tmp/launch"
expect_error "without MPI, one rank on the CPU: refused, in the singular" 2 "launched as 1 rank without MPI: only the CUDA backend" -- \
    env CUVAE_WORLD_SIZE=1 CUVAE_RANK=0 CUVAE_NCCL_ID_FILE="$tmp/id" "$CUVAE" train configs/examples_vae.json \
        --set device=cpu --set data.train_limit=200 --set data.test_limit=100 --out "$tmp/nompi_cpu1"
expect_error "srun without MPI (2 tasks): the ranks from Slurm, the CPU refused" 2 "rank 1 of 2: launched as 2 ranks without MPI" -- \
    env SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=1 SLURM_SUBMIT_DIR="$tmp" SLURM_JOB_ID=7 SLURM_STEP_ID=0 "$CUVAE" train \
        configs/examples_vae.json --set device=cpu --set data.train_limit=200 --set data.test_limit=100 --out "$tmp/x"
if env SLURM_STEP_NUM_TASKS=1 SLURM_PROCID=0 "$CUVAE" train configs/examples_vae.json --set device=cpu \
        --set data.train_limit=200 --set data.test_limit=100 --set train.epochs=1 --set eval.iw_samples=0 \
        --out "$tmp/srun1" >"$tmp/srun1.out" 2>&1 && ! grep -q "data parallel" "$tmp/srun1.out"; then
    ok "srun of one task: one process, as without srun"
else bad "srun of one task: $(grep '^cuvae: ' "$tmp/srun1.out" | tail -1)"; fi
emu="${BUILD_EMU:-build-emu}/cuvae"
if [ -x "$emu" ]; then
    tiny=(--set data.train_limit=300 --set data.test_limit=100 --set device=cuda --set model.latent_dim=8
          --set train.epochs=1 --set train.batch_size=100 --set eval.iw_samples=0 --set train.epoch_images=false
          --set loss.free_bits=0.5)
    expect_error "(emulated CUDA) without MPI: the id file is required" 2 \
        "launched as 2 ranks without MPI: set CUVAE_NCCL_ID_FILE to a path every rank sees" -- \
        env CUVAE_WORLD_SIZE=2 CUVAE_RANK=1 "$emu" train configs/examples_vae.json "${tiny[@]}" --out "$tmp/nompi_noid"
    expect_error "(emulated CUDA) without MPI, device auto: the id file is required (not the CPU's advice)" 2 \
        "device auto: CUDA is unusable \(launched as 2 ranks without MPI: set CUVAE_NCCL_ID_FILE" -- \
        env CUVAE_WORLD_SIZE=2 CUVAE_RANK=1 "$emu" train configs/examples_vae.json "${tiny[@]}" --set device=auto --out "$tmp/nompi_noid"
    [ ! -e "$tmp/nompi_noid" ] && ok "... (emulated CUDA) the refused launch created no run folder" \
        || bad "(emulated CUDA) the launch without an id file created $tmp/nompi_noid"
    "$emu" train configs/examples_vae.json "${tiny[@]}" --out "$tmp/nompi1" 2>/dev/null
    if env CUVAE_WORLD_SIZE=1 CUVAE_RANK=0 CUVAE_NCCL_ID_FILE="$tmp/nccl.id" "$emu" train configs/examples_vae.json \
            "${tiny[@]}" --out "$tmp/nompi2" >"$tmp/nompi2.out" 2>&1 &&
       grep -q "NCCL [0-9]* communicator of 1 rank, rank 0 on GPU 0 (no MPI: the id through CUVAE_NCCL_ID_FILE)" \
            "$tmp/nompi2.out" && [ ! -e "$tmp/nccl.id" ] &&
       cmp -s "$tmp/nompi1/model.safetensors" "$tmp/nompi2/model.safetensors"; then
        ok "(emulated CUDA) without MPI: the NCCL id through a file (removed after); the one-rank NCCL path runs, bit-exact with one process (a one-rank all-reduce changes nothing: the sums themselves are checked with two ranks on the CPU)"
    else
        bad "(emulated CUDA) without MPI: $(grep '^cuvae: ' "$tmp/nompi2.out" | tail -1)"
    fi
else
    skip "(emulated CUDA) without MPI" "$emu not built (make emu)"
fi

if ! "$CUVAE" --version | grep -q "data parallel: MPI"; then
    # a build without MPI launched as ranks must say so (a launcher's environment, faked)
    expect_error "launched as ranks without MPI: one clear line" 2 "launched as 2 ranks, but this build has no MPI" -- \
        env OMPI_COMM_WORLD_SIZE=2 "$CUVAE" train configs/examples_vae.json --set device=cpu --out "$tmp/none"
    why="$CUVAE was built without MPI (install libopenmpi-dev openmpi-bin and rebuild)"
    [ -n "${CUVAE_SANITIZED:-}" ] && why="the sanitized build leaves MPI out (Makefile: ASan's leak check and Open MPI disagree); the plain build's make test runs them"
    skip "data-parallel runs" "$why"
    cli_finish cli_distributed; exit
fi
if ! command -v mpirun >/dev/null 2>&1; then
    skip "data-parallel runs" "mpirun not found (apt-get install openmpi-bin)"; cli_finish cli_distributed; exit
fi
# root in a container: Open MPI wants to be told; no process binding, so that one
# process and one rank use the same threads (bit-exact comparisons below)
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi() { local n="$1"; shift; mpirun --oversubscribe --bind-to none -np "$n" "$@"; }
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1   # 2 ranks on a 2-core machine
# srun --mpi=pmix sets PMIX_RANK and no size variable beside Slurm's own: an MPI launch (MPI_Init
# tells the size), not one without MPI (which refused the CPU, advising the very srun --mpi=pmix
# used, until 2026-12-06). Faked: with no PMIx server Open MPI starts as a singleton of one rank.
if env SLURM_STEP_NUM_TASKS=2 SLURM_PROCID=0 SLURM_LOCALID=0 PMIX_RANK=0 CUVAE_DIST_TIMEOUT=20 timeout 100 \
        "$CUVAE" train configs/examples_vae.json --set device=cpu --set data.train_limit=200 --set data.test_limit=100 \
        --set train.epochs=1 --set eval.iw_samples=0 --out "$tmp/pmix" >"$tmp/pmix.out" 2>&1 &&
   [ -e "$tmp/pmix/model.safetensors" ] && ! grep -q "without MPI" "$tmp/pmix.out"; then
    ok "srun --mpi=pmix (PMIX_RANK, no size variable): launched through MPI, not refused as a launch without it"
else bad "srun --mpi=pmix (faked): $(grep '^cuvae: ' "$tmp/pmix.out" | tail -1)"; fi
small=(--set data.train_limit=2000 --set data.test_limit=500 --set device=cpu --set model.latent_dim=8
       --set train.batch_size=100 --set eval.iw_samples=0 --set train.epoch_images=false)
train() { "$CUVAE" train configs/examples_vae.json "${small[@]}" "$@"; }
train_mpi() { local n="$1"; shift; mpi "$n" "$CUVAE" train configs/examples_vae.json "${small[@]}" "$@"; }

# compare A B [INIT]: the log's losses (relative 1e-5) and the parameters of two runs; prints
# the largest differences. The parameters: absolute 1e-4, or, given INIT (the same run after 0
# epochs: the initial parameters), in each tensor at most 1% of the largest distance training moved
# one of its values (a model whose float noise grows over the steps with OpenBLAS's kernel choice:
# a lost or doubled shard moves parameters by a good part of that distance)
compare() {
    /usr/bin/env python3 - "$@" <<'EOF'
import json, struct, sys
def load(path):
    blob = open(path, 'rb').read()
    n = struct.unpack('<Q', blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == '__metadata__' or t['dtype'] != 'F32':
            continue
        s, e = t['data_offsets']
        out[name] = struct.unpack('<%df' % ((e - s) // 4), blob[8 + n + s:8 + n + e])
    return out
a, b = sys.argv[1], sys.argv[2]
log_a = [json.loads(l) for l in open(a + '/log.jsonl')]
log_b = [json.loads(l) for l in open(b + '/log.jsonl')]
assert len(log_a) == len(log_b), 'epochs %d vs %d' % (len(log_a), len(log_b))
loss_rel = max(abs(x[k] - y[k]) / max(abs(x[k]), 1e-9) for x, y in zip(log_a, log_b)
               for k in ('train_loss', 'test_loss', 'train_rec', 'train_kl'))
pa, pb = load(a + '/model.safetensors'), load(b + '/model.safetensors')
assert pa.keys() == pb.keys()
param_abs = max(max((abs(x - y) for x, y in zip(pa[k], pb[k])), default=0.0) for k in pa)
if len(sys.argv) > 3:
    p0 = load(sys.argv[3] + '/model.safetensors')
    worst, worst_name = 0.0, ''
    for k in pa:
        moved = max((abs(x - y) for x, y in zip(pa[k], p0[k])), default=0.0)
        differ = max((abs(x - y) for x, y in zip(pa[k], pb[k])), default=0.0)
        share = differ / moved if moved > 0 else (0.0 if differ == 0 else float('inf'))
        if share > worst:
            worst, worst_name = share, k
    print('loss curve: largest relative difference %.2e; parameters: largest difference %.2e of '
          'what training moved them (%s; absolute %.2e)' % (loss_rel, worst, worst_name, param_abs))
    sys.exit(0 if loss_rel < 1e-5 and worst < 1e-2 else 1)
print('loss curve: largest relative difference %.2e; parameters: largest absolute difference %.2e'
      % (loss_rel, param_abs))
sys.exit(0 if loss_rel < 1e-5 and param_abs < 1e-4 else 1)
EOF
}

# ---- np 2 == one process -----------------------------------------------------
train --set train.epochs=2 --out "$tmp/one" 2>"$tmp/one.err" || bad "one process: $(tail -1 "$tmp/one.err")"
if train_mpi 2 --set train.epochs=2 --out "$tmp/two" >"$tmp/two.out" 2>&1; then
    grep -q "data parallel: 2 ranks, global batch 100 (shards of 50 rows)" "$tmp/two.out" \
        && ok "mpirun -np 2: announces 2 ranks, shards of 50" || bad "mpirun -np 2: no data-parallel line"
    if diff=$(compare "$tmp/one" "$tmp/two"); then ok "mpirun -np 2 == one process, global batch 100 ($diff)"
    else bad "mpirun -np 2 != one process: $diff"; fi
    [ "$(ls "$tmp/two")" = "$(ls "$tmp/one")" ] && ok "rank 0 alone wrote the run folder, the same files" \
        || bad "run folders differ: $(ls "$tmp/two" | tr '\n' ' ') vs $(ls "$tmp/one" | tr '\n' ' ')"
else
    bad "mpirun -np 2 failed: $(grep cuvae: "$tmp/two.out" | tail -2)"
fi
# a global batch that does not divide (99 = 50 + 49), free bits (the KL statistics
# are summed over the ranks too) and dynamic binarization (each shard its own draws).
# One epoch: the free-bits floor is a hinge, and once training pushes a latent dimension
# down onto it (the second epoch here) its batch KL sits at the floor step after step, so a
# last-bit difference in the sums (another order over 2 ranks) can take the other side of
# the hinge and the runs part by a learning-rate-sized step (3.8e-3 in the parameters after
# 2 epochs on an AMD EPYC, 2026-12-02; 5.6e-6 after one). One epoch still catches
# statistics left unreduced (a rank's own half-batch KL: 3.3e-2 in the loss curve).
odd=(--set train.batch_size=99 --set loss.free_bits=0.5 --set data.binarize=dynamic --set train.epochs=1)
train "${odd[@]}" --out "$tmp/odd1" 2>"$tmp/odd1.err" || bad "one process (batch 99): $(tail -1 "$tmp/odd1.err")"
if train_mpi 2 "${odd[@]}" --out "$tmp/odd2" >"$tmp/odd2.out" 2>&1; then
    grep -q "shards of 49 to 50 rows" "$tmp/odd2.out" && ok "batch 99 on 2 ranks: shards of 49 to 50" \
        || bad "batch 99: shards not announced"
    if diff=$(compare "$tmp/odd1" "$tmp/odd2"); then
        ok "mpirun -np 2 == one process, batch 99, free bits, dynamic binarization ($diff)"
    else bad "batch 99, free bits: mpirun -np 2 != one process: $diff"; fi
else
    bad "mpirun -np 2 (batch 99) failed: $(grep cuvae: "$tmp/odd2.out" | tail -2)"
fi

# ---- --resume across a change of N -----------------------------------------------
if train_mpi 2 --set train.epochs=1 --out "$tmp/r21" >"$tmp/r21.out" 2>&1 &&
   train --set train.epochs=2 --out "$tmp/r21" --resume 2>"$tmp/r21.err"; then
    grep -q "resuming $tmp/r21 after epoch 1 of 2" "$tmp/r21.err" || bad "resume 2 -> 1: not resumed"
    if diff=$(compare "$tmp/one" "$tmp/r21"); then ok "1 epoch on 2 ranks, --resume on 1 == 2 epochs on 1 ($diff)"
    else bad "resume 2 -> 1 ranks: $diff"; fi
else
    bad "resume 2 -> 1 ranks failed: $(tail -1 "$tmp/r21.err" 2>/dev/null) $(grep cuvae: "$tmp/r21.out" | tail -1)"
fi
if train --set train.epochs=1 --out "$tmp/r12" 2>"$tmp/r12.err" &&
   train_mpi 2 --set train.epochs=2 --out "$tmp/r12" --resume >"$tmp/r12.out" 2>&1; then
    grep -q "resuming $tmp/r12 after epoch 1 of 2" "$tmp/r12.out" && grep -q "data parallel: 2 ranks" "$tmp/r12.out" \
        || bad "resume 1 -> 2: not resumed on 2 ranks"
    if diff=$(compare "$tmp/one" "$tmp/r12"); then ok "1 epoch on 1 rank, --resume on 2 == 2 epochs on 1 ($diff)"
    else bad "resume 1 -> 2 ranks: $diff"; fi
else
    bad "resume 1 -> 2 ranks failed: $(grep cuvae: "$tmp/r12.out" | tail -1)"
fi
# a staged --overwrite run (stopped after its first epoch) resumed on 2 ranks: rank 0 alone puts it
# in place of the earlier run, once its training has ended (rank 1 moved it there as soon as its
# own last epoch ended, while rank 0 still wrote into it: the save failed and the earlier run was gone)
train --set train.epochs=1 --set train.seed=5 --out "$tmp/sr" 2>/dev/null
train --set train.epochs=1 --out "$tmp/sr_stage" 2>/dev/null && rm "$tmp/sr_stage/eval.json" && cp -r "$tmp/sr_stage" "$tmp/sr/.new-run"
if train_mpi 2 --set train.epochs=2 --out "$tmp/sr" --resume >"$tmp/sr.out" 2>&1; then
    if grep -q "resuming the --overwrite run staged in" "$tmp/sr.out" && [ ! -e "$tmp/sr/.new-run" ] && [ -s "$tmp/sr/eval.json" ] \
       && [ "$(wc -l < "$tmp/sr/log.jsonl")" -eq 2 ] && diff=$(compare "$tmp/one" "$tmp/sr"); then
        ok "a staged --overwrite run resumed on 2 ranks replaces the earlier run once it ends, == 2 epochs on 1 ($diff)"
    else
        bad "staged run resumed on 2 ranks: $(ls -a "$tmp/sr" | tr '\n' ' ') $(grep cuvae: "$tmp/sr.out" | tail -1)"
    fi
else
    bad "staged run resumed on 2 ranks failed: $(grep cuvae: "$tmp/sr.out" | tail -1)"
fi

# a training set whose last batch has 1 row (2,001 in batches of 100): 21 steps an epoch on 1 rank,
# 20 on 2 (the row is left out there). --resume across that change goes on from the same epoch and
# step (refused until 2026-12-06, "do not fit 21 steps an epoch"), 2 -> 1 -> 2 ranks, the last with
# a history of both counts (its Adam bias corrections are those of the 41 updates made)
last_row=(--set data.train_limit=2001)
if train_mpi 2 "${last_row[@]}" --set train.epochs=1 --out "$tmp/t21" >"$tmp/t21.out" 2>&1 &&
   train "${last_row[@]}" --set train.epochs=2 --out "$tmp/t21" --resume 2>"$tmp/t21.err" &&
   train_mpi 2 "${last_row[@]}" --set train.epochs=3 --out "$tmp/t21" --resume >"$tmp/t212.out" 2>&1; then
    if grep -q "note: $tmp/t21/resume.safetensors was written with 20 steps an epoch, this run has 21 (the last batch of 1 example is trained on this number of ranks)" "$tmp/t21.err" &&
       grep -q "note: $tmp/t21/resume.safetensors was written with 21 steps an epoch, this run has 20 (the last batch of 1 example is left out on this number of ranks)" "$tmp/t212.out" &&
       [ "$(wc -l < "$tmp/t21/log.jsonl")" -eq 3 ] && [ -s "$tmp/t21/eval.json" ]; then
        ok "2,001 examples (one step less an epoch on 2 ranks): 2 -> 1 -> 2 ranks resumed, each change noted, 3 epochs logged"
    else bad "resume across a change of steps an epoch: $(grep 'note\|cuvae: [a-z]*:' "$tmp/t21.err" "$tmp/t212.out" | tail -2)"; fi
else
    bad "resume across a change of steps an epoch failed: $(tail -1 "$tmp/t21.err" 2>/dev/null) $(grep cuvae: "$tmp/t21.out" "$tmp/t212.out" 2>/dev/null | tail -1)"
fi
# stopped after the 21st step of epoch 1 (written by hand from a one-rank run's file: epoch 0, step
# 20 done of 21; no signal can be timed to that step) and resumed on 2 ranks, whose epoch has 20
# steps: that epoch's steps are done, and it ends there (its evaluation, log line and files)
if train "${last_row[@]}" --set train.epochs=1 --out "$tmp/t20" 2>/dev/null; then
    /usr/bin/env python3 - "$tmp/t20/resume.safetensors" <<'EOF'
import json, struct, sys, zlib
raw = open(sys.argv[1], "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n]); data = raw[8 + n:]; meta = header["__metadata__"]
b1 = b2 = 1.0
for _ in range(20):
    b1 *= 0.9; b2 *= 0.999
# the 20 steps' loss sums still pending on the device (no log read in them: log_interval 100)
meta.update(epoch="0", step="20", steps_in_epoch="20", beta1_power=b1.hex(), beta2_power=b2.hex(),
            log_crc32="00000000", epoch_sums="0x0p+0,0x0p+0,0x0p+0,0x0p+0",
            loss_acc=",".join(x.hex() for x in (4000.0, 200.0, 2000.0)))
meta.pop("crc32_entries", None); meta.pop("crc32")
crc = zlib.crc32(data)
for key, value in meta.items():
    crc = zlib.crc32(key.encode() + b"\0" + value.encode() + b"\0", crc)
meta["crc32"] = "%08x" % crc
text = json.dumps(header).encode(); text += b" " * (-(8 + len(text)) % 8)
open(sys.argv[1], "wb").write(struct.pack("<Q", len(text)) + text + data)
EOF
    rm "$tmp/t20/eval.json"   # (the one-rank run's: the resumed run writes its own)
    if train_mpi 2 "${last_row[@]}" --set train.epochs=1 --out "$tmp/t20" --resume >"$tmp/t20.out" 2>&1 &&
       grep -q "resuming $tmp/t20 in epoch 1 of 1, after step 20 of 20" "$tmp/t20.out" &&
       [ "$(wc -l < "$tmp/t20/log.jsonl")" -eq 1 ] && [ -s "$tmp/t20/eval.json" ] &&
       /usr/bin/env python3 -c 'import json, sys; l = json.loads(open(sys.argv[1]).read())
sys.exit(not (abs(l["train_rec"] - 2.0) < 1e-9 and abs(l["train_kl"] - 0.1) < 1e-9))' "$tmp/t20/log.jsonl"; then
        ok "stopped after step 21 of 21, resumed on 2 ranks (20 an epoch): the epoch ends there, logged once with its pending loss sums"
    else bad "resume at the end of the longer epoch: $(grep cuvae: "$tmp/t20.out" | tail -2)"; fi
else bad "the one-rank run of 2,001 examples failed"; fi

# ---- made and pixelcnn: their masks are buffers the model sets (not running statistics), so
# they train as ranks: a MADE with 4 mask sets drawn per step over a random order, and a PixelCNN
ar=(--set device=cpu --set data.train_limit=2000 --set data.test_limit=300 --set train.epochs=2
    --set train.epoch_images=false --set train.batch_size=100)
# (the PixelCNN with SGD: Adam turns last-bit differences of its conv weights' near-zero gradients
# into lr-sized steps, 3.7e-4 apart after 40 steps. Even under SGD its float noise grows with the
# steps, by how much depends on OpenBLAS's kernels: 1.7e-5 to 1.9e-4 in a weight after 40 steps,
# 1.9e-4 to 1.1e-3 of what training moved it, so both runs are measured against their 0-epoch run)
for run in "made_h500 --set model.masks=4 --set model.ordering=random" \
           "pixelcnn_binary --set train.optimizer=sgd --set train.momentum=0.9 --set train.lr=0.001"; do
    set -- $run; name=$1; shift
    if "$CUVAE" train "configs/lectures/$name.json" "${ar[@]}" "$@" --out "$tmp/${name}_1" 2>"$tmp/$name.err" &&
       mpi 2 "$CUVAE" train "configs/lectures/$name.json" "${ar[@]}" "$@" --out "$tmp/${name}_2" >"$tmp/$name.out" 2>&1; then
        if ! "$CUVAE" train "configs/lectures/$name.json" "${ar[@]}" "$@" --set train.epochs=0 --out "$tmp/${name}_0" \
                >/dev/null 2>&1; then bad "$name after 0 epochs: failed"
        elif diff=$(compare "$tmp/${name}_1" "$tmp/${name}_2" "$tmp/${name}_0"); then ok "$name $*: mpirun -np 2 == one process ($diff)"
        else bad "$name on 2 ranks != one process: $diff"; fi
    else bad "$name on 2 ranks: $(tail -1 "$tmp/$name.err") $(grep cuvae: "$tmp/$name.out" | tail -1)"; fi
done
set --

# ---- refusals ------------------------------------------------------------------------
# expect_mpi_error NAME PATTERN -- cmd: fails (non-zero) with a cuvae line matching PATTERN
expect_mpi_error() {
    local name="$1" pattern="$2"; shift 3
    "$@" >"$tmp/err.out" 2>&1; local rc=$?
    if [ "$rc" -ne 0 ] && grep -E '^cuvae: ' "$tmp/err.out" | grep -qE -- "$pattern"; then ok "$name (exit $rc)"
    else bad "$name: exit $rc, output: $(grep -v '^ *$' "$tmp/err.out" | head -c 400)"; fi
}
expect_mpi_error "a gan on 2 ranks: refused, named" "model.kind gan .*data-parallel training \(2 ranks\) does not support" -- \
    mpi 2 "$CUVAE" train configs/lectures/dcgan.json --set device=cpu --set data.train_limit=200 \
        --set data.test_limit=100 --out "$tmp/gan"
[ ! -e "$tmp/gan" ] && ok "the refused run touched no folder" || bad "the refused run created $tmp/gan"
expect_mpi_error "an aae on 2 ranks: refused, its phases named" \
    "model.kind aae trains its players in alternating phases, each with its own optimizer: data-parallel" -- \
    mpi 2 "$CUVAE" train configs/lectures/aae_mixture.json --set device=cpu --set data.train_limit=200 \
        --set data.test_limit=100 --out "$tmp/aae"
expect_mpi_error "a vq_vae on 2 ranks: refused, its codebook updates named" \
    "model.kind vq_vae updates its codebook outside the gradient \(EMA, dead-code restarts\): data-parallel" -- \
    mpi 2 "$CUVAE" train configs/lectures/vq_vae_k256.json --set device=cpu --set data.train_limit=200 \
        --set data.test_limit=100 --out "$tmp/vq"
expect_mpi_error "a network with batch norm on 2 ranks: refused, named" \
    "model.kind vae keeps running statistics \(batch norm\) that the ranks would keep apart" -- \
    mpi 2 "$CUVAE" train configs/examples_vae.json "${small[@]}" \
        --set 'model.encoder=[{"flatten":{}},{"linear":64},{"batch_norm":{}},"relu"]' --out "$tmp/bn"
# ranks launched with other settings (mpirun's A : B form) or reading other files train another run
# on each rank: refused before the run folder is touched, the rank that differs naming its line
mpmd() { mpirun --oversubscribe --bind-to none -np 1 "$@"; }
expect_mpi_error "a rank with another train.seed: refused, naming the line" \
    'rank 1 of 2: its effective config is not rank 0.s: line [0-9]+ is `"seed": 7,` where rank 0 has `"seed": 1,`' -- \
    mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/seeds" : \
         -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.seed=7 --out "$tmp/seeds"
[ ! -e "$tmp/seeds" ] && ok "the refused run touched no folder" || bad "the refused run created $tmp/seeds"
expect_mpi_error "a rank with another model.latent_dim: refused, naming the line" \
    'its effective config is not rank 0.s: line [0-9]+ is `"latent_dim": 4,` where rank 0 has `"latent_dim": 8,`' -- \
    mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/latents" : \
         -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set model.latent_dim=4 --out "$tmp/latents"
# a rank with another device (the CPU beside a rank that tries its GPU, which compares the ranks' GPUs
# in a collective of its own): the config check comes first, so the line is named at once (it
# waited out CUVAE_DIST_TIMEOUT in the GPU check until 2026-12-06)
expect_mpi_error "a rank with device auto beside rank 0's cpu: refused at once, naming the line" \
    'rank 1 of 2: its effective config is not rank 0.s: line [0-9]+ is `"device": "auto"` where rank 0 has `"device": "cpu"`' -- \
    timeout 100 env CUVAE_DIST_TIMEOUT=60 mpirun --oversubscribe --bind-to none -x CUVAE_DIST_TIMEOUT \
        -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/devices" : \
        -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set device=auto --out "$tmp/devices"
[ ! -e "$tmp/devices" ] && ok "the refused run touched no folder" || bad "the refused run created $tmp/devices"
# a rank other than 0 that fails alone, printing to its quiet stderr before it exits (here a bad
# OMP_NUM_THREADS in its environment alone): its line is said with its rank (it ended saying
# nothing until 2026-12-06: mpirun's "exited with non-zero status" was all there was)
expect_mpi_error "rank 1 failing alone (its own OMP_NUM_THREADS): its message said with its rank" \
    'rank 1 of 2: OMP_NUM_THREADS=abc: not a thread count .*\(exit status 2\)' -- \
    timeout 100 env CUVAE_DIST_TIMEOUT=60 mpirun --oversubscribe --bind-to none -x CUVAE_DIST_TIMEOUT \
        -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/threads" : \
        -np 1 env OMP_NUM_THREADS=abc "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/threads"
mkdir -p "$tmp/files_a" "$tmp/files_b"
/usr/bin/env python3 - "$tmp" <<'EOF'
import struct, sys, random
for d, seed in (('files_a', 1), ('files_b', 2)):
    rng = random.Random(seed)
    header = "{'descr': '|u1', 'fortran_order': False, 'shape': (300, 28, 28), }"
    header += ' ' * (117 - len(header)) + '\n'
    with open('%s/%s/x.npy' % (sys.argv[1], d), 'wb') as f:
        f.write(b'\x93NUMPY\x01\x00' + struct.pack('<H', len(header)) + header.encode())
        f.write(bytes(rng.randrange(256) for _ in range(300 * 784)))
EOF
files_run=(--set device=cpu --set model.latent_dim=8 --set train.batch_size=100 --set eval.iw_samples=0
           --set train.epochs=1)
files=(--set data.dataset=files --set data.train=x.npy --set data.test_fraction=0.2 "${files_run[@]}")
expect_mpi_error "the same config reading other files on each rank (a relative path, other working folders): refused" \
    "rank 1 of 2: its data \(CRC-32 [0-9a-f]{8} of the training, validation and test sets\) are not rank 0's \([0-9a-f]{8}\)" -- \
    mpmd -wdir "$tmp/files_a" "$(realpath "$CUVAE")" train "$PWD/configs/examples_vae.json" "${files[@]}" --out "$tmp/files_run" : \
         -np 1 -wdir "$tmp/files_b" "$(realpath "$CUVAE")" train "$PWD/configs/examples_vae.json" "${files[@]}" --out "$tmp/files_run"
[ ! -e "$tmp/files_run" ] && ok "the refused run touched no folder" || bad "the refused run created $tmp/files_run"
# the same files under another folder on each rank (node-local copies): the same run, as one process
mkdir -p "$tmp/files_c" && cp "$tmp/files_a/x.npy" "$tmp/files_c/x.npy"
"$CUVAE" train configs/examples_vae.json "${files[@]}" --set data.train="$tmp/files_a/x.npy" --out "$tmp/files_one" \
    >/dev/null 2>&1 || bad "files on one process: failed"
if mpmd "$CUVAE" train configs/examples_vae.json "${files[@]}" --set data.train="$tmp/files_a/x.npy" --out "$tmp/files_two" : \
     -np 1 "$CUVAE" train configs/examples_vae.json "${files[@]}" --set data.train="$tmp/files_c/x.npy" \
     --out "$tmp/files_two" >"$tmp/files_two.out" 2>&1; then
    if diff=$(compare "$tmp/files_one" "$tmp/files_two"); then
        ok "the same files under another path on each rank: trained, == one process ($diff)"
    else bad "the same files under other paths != one process: $diff"; fi
    grep -q '"train": "'"$tmp"'/files_a/x.npy"' "$tmp/files_two/config.json" \
        && ok "... config.json holds rank 0's path" || bad "config.json: $(grep '"train"' "$tmp/files_two/config.json")"
    # ... and resumes so (rank 1 checks its resume file's config without the data paths)
    if mpmd "$CUVAE" train configs/examples_vae.json "${files[@]}" --set data.train="$tmp/files_a/x.npy" --set train.epochs=2 \
            --out "$tmp/files_two" --resume : -np 1 "$CUVAE" train configs/examples_vae.json "${files[@]}" \
            --set data.train="$tmp/files_c/x.npy" --set train.epochs=2 --out "$tmp/files_two" --resume \
            >"$tmp/files_resume.out" 2>&1 && grep -q "resuming $tmp/files_two after epoch 1 of 2" "$tmp/files_resume.out" &&
       [ "$(wc -l < "$tmp/files_two/log.jsonl")" -eq 2 ]; then
        ok "... and --resume on those ranks continues it (epoch 2)"
    else bad "--resume with other paths per rank: $(grep cuvae: "$tmp/files_resume.out" | tail -1)"; fi
else
    bad "the same files under other paths on each rank: refused: $(grep cuvae: "$tmp/files_two.out" | tail -1)"
fi
# ranks that start from different points (one resuming beside one starting anew, resume files of
# different epochs, or of the same epoch but another state): refused before training, rank 0's
# folder as it was (they trained rank 0's run on mixed weights, then hung waiting for epochs)
train --set train.epochs=1 --out "$tmp/start_a" >/dev/null 2>&1 || bad "start points: the first run failed"
cp -r "$tmp/start_a" "$tmp/start_b"; cp -r "$tmp/start_a" "$tmp/start_c"
train --set train.epochs=2 --out "$tmp/start_b" --resume >/dev/null 2>&1 || bad "start points: resuming a copy failed"
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 train --set train.epochs=1 --out "$tmp/start_c" --overwrite >/dev/null 2>&1 \
    || bad "start points: the 2-thread run failed"
cp "$tmp/start_a/log.jsonl" "$tmp/start_a.log"; cp "$tmp/start_a/resume.safetensors" "$tmp/start_a.resume"
expect_mpi_error "rank 0 resuming, rank 1 starting anew (--overwrite): refused, each start named" \
    'rank 1 of 2: it starts a new run where rank 0 resumes after epoch 1: every rank must start a new run, or every rank resume the same one' -- \
    mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_a" --resume : \
         -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_a" --overwrite
expect_mpi_error "rank 0 starting anew (--overwrite), rank 1 resuming: refused" \
    'rank 1 of 2: it resumes after epoch 1 where rank 0 starts a new run' -- \
    mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_a" --overwrite : \
         -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_a" --resume
expect_mpi_error "ranks resuming runs of the same config at different epochs (node-local folders): refused" \
    'rank 1 of 2: it resumes after epoch 2 where rank 0 resumes after epoch 1' -- \
    mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=3 --out "$tmp/start_a" --resume : \
         -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=3 --out "$tmp/start_b" --resume
if cmp -s "$tmp/start_a/resume.safetensors" "$tmp/start_c/resume.safetensors"; then
    skip "ranks resuming the same epoch of another state" "1 and 2 threads gave the same bits here (no second state to resume)"
else
    expect_mpi_error "ranks resuming the same epoch from another state: refused, the CRC-32s named" \
        'rank 1 of 2: it resumes after epoch 1 as rank 0 does, but from another state \(CRC-32 [0-9a-f]{8} of its weights and optimizer moments, rank 0.s [0-9a-f]{8}\)' -- \
        mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_a" --resume : \
             -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_c" --resume
fi
cmp -s "$tmp/start_a/log.jsonl" "$tmp/start_a.log" && cmp -s "$tmp/start_a/resume.safetensors" "$tmp/start_a.resume" \
    && [ "$(ls -A "$tmp" | grep -c '^start_a\.')" -eq 2 ] && [ "$(ls -A "$tmp/start_a" | grep -vc '^\(config.json\|eval.json\|log.jsonl\|model.safetensors\|resume.safetensors\)$')" -eq 0 ] \
    && ok "... rank 0's folder as it was, nothing staged beside it" || bad "start points: $tmp/start_a changed: $(ls -A "$tmp" | grep start_a)"
# ... and the same state on every rank (a copy of the resume file) is the same run
cp -r "$tmp/start_a" "$tmp/start_d"
if mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_a" --resume : \
     -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/start_d" --resume \
     >"$tmp/start_same.out" 2>&1 && [ "$(wc -l < "$tmp/start_a/log.jsonl")" -eq 2 ]; then
    ok "ranks resuming copies of the same resume file: trained (epoch 2)"
else bad "copies of one resume file on each rank: $(grep cuvae: "$tmp/start_same.out" | tail -1)"; fi
# a PixelCNN prior whose VQ-VAE (model.prior_of) each rank reads from its own copy: its data are
# the codes, compared as data, so the copies' paths may differ; another VQ-VAE is refused (the
# config holds its file's CRC-32, model.prior_crc32)
cat > "$tmp/vq.json" <<'JSON'
{"name": "vq_small", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 400, "test_limit": 100},
 "model": {"kind": "vq_vae", "input_dim": 784, "latent_dim": 8,
   "encoder": [{"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, "relu",
               {"conv2d": 8, "kernel": 4, "stride": 2, "padding": 1}, "relu", {"conv2d": 8, "kernel": 1}],
   "codebook": {"size": 16, "update": "ema"},
   "decoder": [{"conv_transpose2d": 8, "kernel": 4, "stride": 2, "padding": 1}, "relu",
               {"conv_transpose2d": 1, "kernel": 4, "stride": 2, "padding": 1}], "output": "bernoulli"},
 "train": {"epochs": 1, "batch_size": 50, "lr": 0.002, "seed": 2, "epoch_images": false}, "device": "cpu"}
JSON
cat > "$tmp/prior.json" <<'JSON'
{"name": "prior_small", "data": {"dataset": "mnist", "dir": "data/mnist", "train_limit": 400, "test_limit": 100},
 "model": {"kind": "pixelcnn", "input_dim": 49, "prior_of": "vq.safetensors",
   "network": [{"masked_conv2d_a": 8, "kernel": 3}, "relu", {"conv2d": 16, "kernel": 1}]},
 "train": {"epochs": 1, "batch_size": 50, "lr": 0.003, "seed": 2, "epoch_images": false}, "eval": {"iw_samples": 0},
 "device": "cpu"}
JSON
if "$CUVAE" train "$tmp/vq.json" --out "$tmp/vq" 2>/dev/null &&
   "$CUVAE" train "$tmp/vq.json" --set train.seed=3 --out "$tmp/vq3" 2>/dev/null; then
    mkdir -p "$tmp/prior_a" "$tmp/prior_b"
    cp "$tmp/vq/model.safetensors" "$tmp/prior_a/vq.safetensors"
    cp "$tmp/vq/model.safetensors" "$tmp/prior_b/vq_copy.safetensors"
    if mpmd "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/prior_a/vq.safetensors" --out "$tmp/prior_two" : \
         -np 1 "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/prior_b/vq_copy.safetensors" \
         --out "$tmp/prior_two" >"$tmp/prior_two.out" 2>&1 && [ -s "$tmp/prior_two/eval.json" ]; then
        ok "a prior whose VQ-VAE each rank reads under another path: trained"
    else bad "a prior with its VQ-VAE under other paths per rank: $(grep cuvae: "$tmp/prior_two.out" | tail -1)"; fi
    cp "$tmp/vq3/model.safetensors" "$tmp/prior_b/vq_other.safetensors"
    expect_mpi_error "a prior whose VQ-VAE differs on one rank: refused, naming its CRC" \
        'rank 1 of 2: its effective config is not rank 0.s: line [0-9]+ is `"prior_crc32": "[0-9a-f]{8}",` where rank 0 has `"prior_crc32": "[0-9a-f]{8}",`' -- \
        mpmd "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/prior_a/vq.safetensors" --out "$tmp/prior_x" : \
             -np 1 "$CUVAE" train "$tmp/prior.json" --set model.prior_of="$tmp/prior_b/vq_other.safetensors" \
             --out "$tmp/prior_x"
else
    bad "the prior test's VQ-VAEs did not train"
fi
# a check that fails on one rank alone after the collective ones (rank 1 resumes another folder,
# whose run is past the length asked): rank 0 waits for every rank's checks before it writes its
# folder, so the job ends with rank 0's run as it was (before, rank 0 removed its eval.json)
train --set train.epochs=1 --out "$tmp/bx" 2>/dev/null && train --set train.epochs=3 --out "$tmp/by" 2>/dev/null
before=$(cd "$tmp/bx" && md5sum config.json eval.json log.jsonl model.safetensors resume.safetensors)
mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/bx" --resume : \
     -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set train.epochs=2 --out "$tmp/by" --resume \
     >"$tmp/bxy.out" 2>&1; rc=$?
after=$(cd "$tmp/bx" && md5sum config.json eval.json log.jsonl model.safetensors resume.safetensors 2>&1)
if [ "$rc" -ne 0 ] && grep -q "^cuvae: rank 1 of 2: $tmp/by/resume.safetensors: the run has finished 3 epochs" "$tmp/bxy.out" &&
   [ "$before" = "$after" ]; then
    ok "a resume check failing on rank 1 alone: said by rank 1, rank 0's folder untouched (exit $rc)"
else bad "rank 1's resume check: exit $rc, $(grep cuvae: "$tmp/bxy.out" | head -2); folder changed: $([ "$before" = "$after" ] && echo no || echo yes)"; fi
# the same training files, another test set on rank 1: refused (the epoch's evaluation is sharded)
expect_mpi_error "the same training files, another test file on one rank: refused" \
    "rank 1 of 2: its data \(CRC-32 [0-9a-f]{8} of the training, validation and test sets\) are not rank 0's" -- \
    mpmd "$CUVAE" train configs/examples_vae.json --set data.dataset=files "${files_run[@]}" \
         --set data.train="$tmp/files_a/x.npy" --set data.test="$tmp/files_a/x.npy" --out "$tmp/tests_run" : \
         -np 1 "$CUVAE" train configs/examples_vae.json --set data.dataset=files "${files_run[@]}" \
         --set data.train="$tmp/files_a/x.npy" --set data.test="$tmp/files_b/x.npy" --out "$tmp/tests_run"
[ ! -e "$tmp/tests_run" ] && ok "the refused run touched no folder" || bad "the refused run created $tmp/tests_run"
expect_mpi_error "a training set of 1 example on 2 ranks: refused, naming the data (not train.batch_size)" \
    "the training set has 1 example, fewer than the 2 ranks .*: raise data.train_limit" -- \
    mpi 2 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set data.train_limit=1 --out "$tmp/one_example"
expect_mpi_error "cuvae eval on 2 ranks: refused" "only \`cuvae train\` runs data-parallel" -- \
    mpi 2 "$CUVAE" eval "$tmp/one/model.safetensors"
# a failure every rank meets (a bad option or config, missing data, a run folder in the way) is
# said once, by rank 0; one that a single rank meets, by that rank
said_once() {   # said_once NAME PATTERN -- cmd: exit 2, exactly one cuvae line, rank 0's, matching
    local name="$1" pattern="$2"; shift 3
    "$@" >"$tmp/once.out" 2>&1; local rc=$?
    local lines; lines=$(grep -c '^cuvae: ' "$tmp/once.out")
    if [ "$rc" -eq 2 ] && [ "$lines" -eq 1 ] && grep -E '^cuvae: ' "$tmp/once.out" | grep -qE -- "$pattern"; then
        ok "$name (exit 2, one line)"
    else bad "$name: exit $rc, $lines cuvae lines: $(grep '^cuvae: ' "$tmp/once.out" | head -c 400)"; fi
}
said_once "a bad --set on 3 ranks: said once, by rank 0" '^cuvae: --set model.latent_dim=0 .*must be >= 1' -- \
    mpi 3 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set model.latent_dim=0 --out "$tmp/bad_set"
said_once "missing data on 3 ranks: said once, by rank 0" '^cuvae: /nonexistent/train-images-idx3-ubyte\(\.gz\): not found' -- \
    mpi 3 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set data.dir=/nonexistent --out "$tmp/no_data"
mkdir -p "$tmp/in_the_way" && echo '{}' > "$tmp/in_the_way/log.jsonl"
said_once "a run folder in the way on 3 ranks: said once, by rank 0" "^cuvae: $tmp/in_the_way holds log.jsonl" -- \
    mpi 3 "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/in_the_way"
said_once "a bad --set on rank 1 alone: said by rank 1" '^cuvae: rank 1 of 2: --set model.latent_dim=-1 .*must be >= 1' -- \
    mpmd "$CUVAE" train configs/examples_vae.json "${small[@]}" --out "$tmp/bad_one" : \
         -np 1 "$CUVAE" train configs/examples_vae.json "${small[@]}" --set model.latent_dim=-1 --out "$tmp/bad_one"
[ ! -e "$tmp/bad_set" ] && [ ! -e "$tmp/no_data" ] && [ ! -e "$tmp/bad_one" ] \
    && ok "... none of them created its run folder" || bad "a refused launch created its run folder"

# ---- a rank that dies, a rank that hangs ------------------------------------------
# (a long enough run; the ranks are found through their environment)
rank_pid() {   # rank_pid N DIR: the pid of rank N of the cuvae ranks training into DIR now (not
    local p   # another job's ranks on this machine)
    for p in $(pgrep -f "cuvae train configs/examples_vae.json .*--out $2( |\$)"); do
        tr '\0' '\n' < "/proc/$p/environ" 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=$1" && { echo "$p"; return; }
    done
}
wait_epochs() {   # wait_epochs DIR N: until DIR/log.jsonl has N lines (at most 60 s)
    for _ in $(seq 600); do
        [ -f "$1/log.jsonl" ] && [ "$(wc -l < "$1/log.jsonl")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
long=(--set train.epochs=400 --set data.train_limit=1000)
train_mpi 2 "${long[@]}" --out "$tmp/killed" >"$tmp/killed.out" 2>&1 &
launcher=$!
if wait_epochs "$tmp/killed" 2 && victim=$(rank_pid 1 "$tmp/killed") && [ -n "$victim" ]; then
    kill -9 "$victim"
    for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$launcher" 2>/dev/null; then
        bad "rank 1 killed: the run still runs after 30 s"; kill -9 "$launcher"
    else
        wait "$launcher"; rc=$?
        [ "$rc" -ne 0 ] && ok "rank 1 killed -9: every rank ended, exit $rc" || bad "rank 1 killed: exit 0"
        # two epochs past what the killed run logged, so the resume has epochs to train
        done_epochs=$(wc -l < "$tmp/killed/log.jsonl")
        if train "${long[@]}" --set train.epochs=$((done_epochs + 2)) --out "$tmp/killed" --resume 2>"$tmp/resume.err" &&
           [ "$(wc -l < "$tmp/killed/log.jsonl")" -eq $((done_epochs + 2)) ]; then
            ok "the folder stays whole: --resume continues it (one process, epochs $((done_epochs + 1))-$((done_epochs + 2)))"
        else bad "resume after the killed rank: $(tail -1 "$tmp/resume.err")"; fi
    fi
else
    bad "rank 1 of the long run not found"; kill -9 "$launcher" 2>/dev/null
fi
wait 2>/dev/null
CUVAE_DIST_TIMEOUT=3 mpirun --oversubscribe --bind-to none -x CUVAE_DIST_TIMEOUT -np 2 "$CUVAE" train \
    configs/examples_vae.json "${small[@]}" "${long[@]}" --out "$tmp/hung" >"$tmp/hung.out" 2>&1 &
launcher=$!
if wait_epochs "$tmp/hung" 1 && victim=$(rank_pid 1 "$tmp/hung") && [ -n "$victim" ]; then
    kill -STOP "$victim"
    for _ in $(seq 300); do kill -0 "$launcher" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$launcher" 2>/dev/null; then
        bad "rank 1 stopped: no timeout after 30 s"; kill -9 "$victim" "$launcher"
    else
        wait "$launcher"; rc=$?
        grep -q "has waited 3 s for the other ranks (CUVAE_DIST_TIMEOUT): a rank died or hangs" "$tmp/hung.out" &&
            [ "$rc" -ne 0 ] && ok "rank 1 stopped: rank 0's collective timed out, the run ended (exit $rc)" ||
            bad "rank 1 stopped: exit $rc, $(grep cuvae: "$tmp/hung.out" | tail -1)"
    fi
    kill -9 "$victim" 2>/dev/null
else
    bad "rank 1 of the hanging run not found"; kill -9 "$launcher" 2>/dev/null
fi
wait 2>/dev/null

# ---- SIGTERM to mpirun (it forwards it to the ranks): they stop at the same step, rank 0
# saves the resume point once, and --resume on 2 ranks continues it bit-exactly
train_mpi 2 "${long[@]}" --out "$tmp/stopped" >"$tmp/stopped.out" 2>&1 &
launcher=$!
if wait_epochs "$tmp/stopped" 3; then
    pkill -TERM -P "$launcher" -x mpirun; wait "$launcher"
    stop_epoch=$(sed -n 's/.*interrupted (SIGTERM) in epoch \([0-9]*\) after step.*/\1/p' "$tmp/stopped.out")
    if [ -n "$stop_epoch" ] && [ "$(grep -c 'interrupted (SIGTERM)' "$tmp/stopped.out")" -eq 1 ]; then
        ok "SIGTERM: every rank stopped at one step boundary, one resume point (epoch $stop_epoch)"
        until_epoch=(--set train.epochs=$((stop_epoch + 1)))
        if train_mpi 2 "${long[@]}" "${until_epoch[@]}" --out "$tmp/stopped" --resume >"$tmp/stopped2.out" 2>&1 &&
           train_mpi 2 "${long[@]}" "${until_epoch[@]}" --out "$tmp/straight" >"$tmp/straight.out" 2>&1; then
            if cmp -s "$tmp/stopped/model.safetensors" "$tmp/straight/model.safetensors"; then
                ok "--resume on 2 ranks after SIGTERM == the uninterrupted 2-rank run (bit-exact parameters)"
            else bad "--resume after SIGTERM: parameters differ from the uninterrupted run"; fi
        else
            bad "--resume after SIGTERM failed: $(grep cuvae: "$tmp/stopped2.out" | tail -1)"
        fi
    else
        bad "SIGTERM: $(grep -c 'interrupted' "$tmp/stopped.out") interrupt lines: $(grep cuvae: "$tmp/stopped.out" | tail -1)"
    fi
else
    bad "the run to stop did not start"; kill -9 "$launcher" 2>/dev/null
fi
wait 2>/dev/null

# ---- SIGHUP to rank 0 alone (a closed terminal): every rank stops at the step boundary and
# says SIGHUP, exit 129 on each (rank 1, told through the stop agreement, said SIGTERM until
# 2026-12-06: exit 143, and mpirun's report named whichever rank ended first)
train_mpi 2 "${long[@]}" --out "$tmp/hup" >"$tmp/hup.out" 2>&1 &
launcher=$!
if wait_epochs "$tmp/hup" 2 && victim=$(rank_pid 0 "$tmp/hup") && [ -n "$victim" ]; then
    kill -HUP "$victim"; wait "$launcher"; rc=$?
    if [ "$rc" -eq 129 ] && [ "$(grep -c 'interrupted (SIGHUP)' "$tmp/hup.out")" -eq 1 ] &&
       ! grep -q "interrupted (SIGTERM)\|Exit code: *143" "$tmp/hup.out" && [ -f "$tmp/hup/resume.safetensors" ]; then
        ok "SIGHUP to rank 0 alone: every rank stopped, one resume point, exit 129 (no rank says SIGTERM)"
    else
        bad "SIGHUP to rank 0: exit $rc, $(grep -c 'interrupted (SIGHUP)' "$tmp/hup.out") SIGHUP lines, $(grep 'interrupted (SIGTERM)\|Exit code' "$tmp/hup.out" | tr '\n' ' ')"
    fi
else
    bad "rank 0 of the run to hang up not found"; kill -9 "$launcher" 2>/dev/null
fi
wait 2>/dev/null

# ---- stopped between two log reads: the loss sums of the steps since the last read are every
# rank's and counted once (the resume file keeps their total; rank 0 alone carries it on), so the
# log of a resumed run is the uninterrupted run's, on 2 ranks and on 1
# (batches of 1,000, 180 steps; SGD with momentum, under which 1 and 2 ranks stay within compare's
# tolerances: Adam turns the last-bit differences of near-zero gradients into lr-sized steps, 3e-4
# apart in a parameter after 100 steps)
mid=(--set data.train_limit=60000 --set train.batch_size=1000 --set train.epochs=3 --set train.log_interval=13
     --set train.optimizer=sgd --set train.momentum=0.9 --set train.lr=0.001)
strip_time() { sed -E 's/"seconds": [0-9.]+, "samples_per_s": [0-9.]+, //' "$1"; }
train_mpi 2 "${mid[@]}" --out "$tmp/mid" >"$tmp/mid.out" 2>&1 &
launcher=$!
if wait_epochs "$tmp/mid" 1; then
    sleep 0.3   # into epoch 2 (1-2 s an epoch)
    pkill -TERM -P "$launcher" -x mpirun; wait "$launcher"
    read -r stop_epoch stop_step per_epoch < <(sed -n 's/.*interrupted (SIGTERM) in epoch \([23]\) after step \([0-9]*\) of \([0-9]*\).*/\1 \2 \3/p' "$tmp/mid.out")
    # nothing pending at an epoch's start or right after a log read (every 13 steps of the run)
    if [ -z "$stop_step" ] || [ "$stop_step" -eq 0 ] || [ $(( ((stop_epoch - 1) * per_epoch + stop_step) % 13 )) -eq 0 ]; then
        skip "2 ranks stopped between log reads" "the stop landed where no loss sums are pending: $(grep -o 'interrupted.*after step [0-9]* of [0-9]*' "$tmp/mid.out" || tail -1 "$tmp/mid.out")"
    else
        cp -r "$tmp/mid" "$tmp/mid_on1"
        if train_mpi 2 "${mid[@]}" --out "$tmp/mid" --resume >"$tmp/mid2.out" 2>&1 &&
           train_mpi 2 "${mid[@]}" --out "$tmp/mid_straight" >"$tmp/mid_straight.out" 2>&1; then
            if [ "$(strip_time "$tmp/mid/log.jsonl")" = "$(strip_time "$tmp/mid_straight/log.jsonl")" ] &&
               cmp -s "$tmp/mid/model.safetensors" "$tmp/mid_straight/model.safetensors"; then
                ok "2 ranks stopped after step $stop_step of an epoch (between log reads), --resume on 2: the uninterrupted run's log.jsonl and parameters"
            else bad "stopped after step $stop_step, --resume on 2 ranks: $(diff <(strip_time "$tmp/mid/log.jsonl") <(strip_time "$tmp/mid_straight/log.jsonl") | head -3)"; fi
            if train "${mid[@]}" --out "$tmp/mid_on1" --resume 2>"$tmp/mid_on1.err" &&
               diff=$(compare "$tmp/mid_straight" "$tmp/mid_on1"); then
                ok "2 ranks stopped after step $stop_step, --resume on 1 == the uninterrupted 2-rank run ($diff)"
            else bad "2 ranks stopped after step $stop_step, --resume on 1: $diff $(tail -1 "$tmp/mid_on1.err")"; fi
        else
            bad "--resume of the run stopped between log reads failed: $(grep cuvae: "$tmp/mid2.out" | tail -1)"
        fi
    fi
else
    bad "the run to stop between log reads did not start"; kill -9 "$launcher" 2>/dev/null
fi
wait 2>/dev/null

# ---- the NCCL path with one rank, on the emulated CUDA device ------------------------
emu="${BUILD_EMU:-build-emu}/cuvae"
if [ -x "$emu" ] && "$emu" --version | grep -q "data parallel: MPI"; then
    tiny=(--set data.train_limit=300 --set data.test_limit=100 --set device=cuda --set train.epochs=1)
    "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --out "$tmp/emu1" 2>/dev/null
    if mpi 1 "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --out "$tmp/emu2" >"$tmp/emu2.out" 2>&1 &&
       grep -q "NCCL [0-9]* communicator of 1 rank, rank 0 on GPU 0" "$tmp/emu2.out"; then
        cmp -s "$tmp/emu1/model.safetensors" "$tmp/emu2/model.safetensors" &&
            cmp -s "$tmp/emu1/eval.json" "$tmp/emu2/eval.json" &&
            ok "(emulated CUDA) mpirun -np 1: the one-rank NCCL path in the captured step runs, bit-exact with one process (the emulator has one rank only)" ||
            bad "(emulated CUDA) mpirun -np 1 differs from one process"
    else
        bad "(emulated CUDA) mpirun -np 1: $(grep cuvae: "$tmp/emu2.out" | tail -1)"
    fi
    # launch_refused NAME PATTERN -- MPIRUN_ARGS...: the launch exits 2 on every rank, says PATTERN and
    # leaves no run folder $tmp/NAME (the command's --out)
    launch_refused() {
        local name="$1" pattern="$2"; shift 3
        timeout 120 env CUVAE_DIST_TIMEOUT=30 mpirun --oversubscribe --bind-to none -x CUVAE_DIST_TIMEOUT "$@" \
            >"$tmp/$name.out" 2>&1
        local rc=$?
        if [ "$rc" = 2 ] && grep -q -- "$pattern" "$tmp/$name.out" && [ ! -e "$tmp/$name" ]; then return 0; fi
        echo "exit $rc, $(grep cuvae: "$tmp/$name.out" | tail -2 | tr '\n' ' ')"
        return 1
    }
    # two ranks on the one GPU (local ranks 0 and 1 modulo 1 GPU): found before NCCL starts, by the
    # GPUs' UUIDs, and refused on every rank, device auto too (no CPU fallback); exit 2, no run folder
    if why=$(launch_refused emu_two "^cuvae: .*device auto: data parallel: ranks 0 and 1 are on the same GPU (device 0 of rank 0, 0 of rank 1): one GPU a rank" -- \
            -np 2 "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto --out "$tmp/emu_two"); then
        ok "(emulated CUDA) mpirun -np 2 on 1 GPU, device auto: two ranks on one GPU refused before NCCL, exit 2"
    else
        bad "(emulated CUDA) mpirun -np 2 on 1 GPU, device auto: $why"
    fi
    # rank 1 without a usable GPU (CUVAE_CUDA_DEVICE out of range) beside rank 0 on its GPU: device
    # auto does not train rank 1 on the CPU (the ranks' collectives would never meet): both refuse
    if why=$(launch_refused emu_mixed "no usable CUDA device on rank 1 of 2 (it says why): every rank of a data-parallel run trains on its own GPU" -- \
            -np 1 "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto --out "$tmp/emu_mixed" : \
            -np 1 env CUVAE_CUDA_DEVICE=7 "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto \
            --out "$tmp/emu_mixed"); then
        ok "(emulated CUDA) mpirun, rank 1 without a GPU beside rank 0 on one, device auto: refused, no CPU fallback, exit 2"
    else
        bad "(emulated CUDA) mpirun, one rank without a GPU: $why"
    fi
    # two ranks each on "its own" GPU (CUEMU_UUID) reach NCCL, whose emulation refuses a communicator
    # of more than one rank (as a real NCCL fails without a network between the hosts): every rank
    # refuses, device auto too (until 2026-12-06 auto trained such ranks on the CPU), exit 2
    if why=$(launch_refused emu_nccl "data parallel: NCCL communicator (rank [01] of 2, local rank [01], on GPU 0): invalid usage" -- \
            -np 1 env CUEMU_UUID=gpu-a "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto --out "$tmp/emu_nccl" : \
            -np 1 env CUEMU_UUID=gpu-b "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto \
            --out "$tmp/emu_nccl"); then
        ok "(emulated CUDA) mpirun, NCCL's communicator fails, device auto: refused on every rank, no CPU fallback, exit 2"
    else
        bad "(emulated CUDA) mpirun, NCCL's communicator fails: $why"
    fi
    # rank 0's ncclGetUniqueId fails: its status goes out with the id, and every rank refuses with it
    # (rank 1 tried NCCL with an empty id until 2026-12-06, and rank 0 fell back to the CPU)
    if why=$(launch_refused emu_ncclid "data parallel: NCCL id: ncclGetUniqueId failed on rank 0: system error" -- \
            -np 1 env CUEMU_UUID=gpu-a CUEMU_NCCL_ID_FAIL=1 "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto --out "$tmp/emu_ncclid" : \
            -np 1 env CUEMU_UUID=gpu-b "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" --set device=auto \
            --out "$tmp/emu_ncclid"); then
        ok "(emulated CUDA) mpirun, rank 0's NCCL id fails: every rank refuses with rank 0's reason, exit 2"
    else
        bad "(emulated CUDA) mpirun, rank 0's NCCL id fails: $why"
    fi
    # no rank with a usable GPU: device auto trains every rank on the CPU, as without a GPU
    if timeout 200 env CUVAE_DIST_TIMEOUT=30 mpirun --oversubscribe --bind-to none -x CUVAE_DIST_TIMEOUT \
            -x CUVAE_CUDA_DEVICE=7 -np 2 "$emu" train configs/examples_vae.json "${small[@]}" "${tiny[@]}" \
            --set device=auto --out "$tmp/emu_none" >"$tmp/emu_none.out" 2>&1 &&
       grep -q "^cuvae: device auto: no usable CUDA device: CUVAE_CUDA_DEVICE=7 is not a device index in \[0, 1), using the CPU$" "$tmp/emu_none.out" &&
       grep -q "^cuvae: data parallel: 2 ranks" "$tmp/emu_none.out" && [ -e "$tmp/emu_none/model.safetensors" ]; then
        ok "(emulated CUDA) mpirun, no rank with a usable GPU, device auto: every rank on the CPU, trained"
    else
        bad "(emulated CUDA) mpirun, no usable GPU anywhere: $(grep cuvae: "$tmp/emu_none.out" | tail -1)"
    fi
else
    skip "(emulated CUDA) the NCCL path" "$emu not built with MPI (make emu)"
fi
cli_finish cli_distributed
