import dataclasses
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import mae_tutorial as mt
from mae_tutorial import train as tr
from mae_tutorial.checkpoint import CHECKPOINT, read_metrics, read_training_checkpoint
from mae_tutorial.mae import MaskedAutoencoderViT

TINY = dict(model="vit_mini_patch4", synthetic_size=256, batch_size=32, epochs=2, base_lr=1e-3,
            checkpoint_every=2, log_every=1, progress=False, num_workers=0)


def cfg(tmp_path, **kw) -> tr.TrainConfig:
    return tr.TrainConfig(**{**TINY, "output_dir": str(tmp_path / "run"), **kw})


def weights(run_dir) -> dict[str, torch.Tensor]:
    return read_training_checkpoint(Path(run_dir) / CHECKPOINT)["model"]


def test_schedule_warms_up_then_follows_a_half_cosine():
    lrs = [mt.optim.lr_at(s, 100, 1.0, 0.1, 10) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)  # linear warm-up
    assert all(b > a for a, b in zip(lrs[:10], lrs[1:10], strict=False))
    assert all(b <= a for a, b in zip(lrs[10:], lrs[11:], strict=False))  # then decreasing
    assert lrs[55] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert lrs[-1] == pytest.approx(0.1, abs=1e-3)


def test_no_weight_decay_on_norms_and_biases():
    model = mt.mae_from_preset("vit_mini_patch4")
    decay, no_decay = mt.optim.param_groups(model, 0.05)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith(".bias") or ".norm" in names[id(p)] or
               names[id(p)].startswith(("norm", "decoder_norm")) for p in no_decay["params"])
    assert "blocks.0.attn.qkv.weight" in {names[id(p)] for p in decay["params"]}
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_mixed_precision_choice(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.setattr(mt.optim, "cpu_has_native_bf16", lambda: False)  # e.g. AVX2 only
    assert mt.optim.autocast_dtype(cpu, "auto") is None
    monkeypatch.setattr(mt.optim, "cpu_has_native_bf16", lambda: True)  # AVX512-BF16, AMX
    assert mt.optim.autocast_dtype(cpu, "auto") == torch.bfloat16
    assert mt.optim.autocast_dtype(torch.device("mps"), "auto") is None
    assert mt.optim.autocast_dtype(cpu, "off") is None
    assert mt.optim.autocast_dtype(cpu, "bf16") == torch.bfloat16
    with pytest.raises(ValueError, match="amp must be"):
        mt.optim.autocast_dtype(cpu, "fp8")


def test_training_lowers_the_loss_and_logs(tmp_path):
    summary = tr.train(cfg(tmp_path, epochs=3))
    assert summary["finished"] and summary["steps"] == 3 * (256 // 32)
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == list(range(1, 25))
    assert metrics[-1]["loss"] < metrics[0]["loss"]
    assert {"loss", "lr", "images_per_s", "epoch"} <= set(metrics[0])
    state = read_training_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert state["step"] == 24 and state["config"]["model"] == "vit_mini_patch4"
    assert {"model", "optimizer", "scaler", "rng", "epoch", "model_config"} <= set(state)


@pytest.mark.parametrize("pipeline,workers", [("device", 0), ("loader", 2)])
def test_resume_is_bit_identical(tmp_path, pipeline, workers):
    whole = cfg(tmp_path, pipeline=pipeline, num_workers=workers, output_dir=str(tmp_path / "a"))
    tr.train(whole)
    parts = dataclasses.replace(whole, output_dir=str(tmp_path / "b"), stop_after=5)
    first = tr.train(parts)
    assert first["steps"] == 5 and not first["finished"]
    tr.train(dataclasses.replace(parts, stop_after=None), resume=True)
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [m["step"] for m in read_metrics(tmp_path / "b")] == list(range(1, 17))


def test_gradient_accumulation_runs_and_counts_steps(tmp_path):
    summary = tr.train(cfg(tmp_path, batch_size=16, accum_steps=2, epochs=1))
    assert summary["steps"] == 256 // 16 // 2


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real = MaskedAutoencoderViT.forward_loss
    calls = {"n": 0}

    def poisoned(self, imgs, pred, mask):
        calls["n"] += 1
        loss = real(self, imgs, pred, mask)
        return loss * float("nan") if calls["n"] == 6 else loss

    monkeypatch.setattr(MaskedAutoencoderViT, "forward_loss", poisoned)
    with pytest.raises(tr.NonFiniteLossError, match="at step 5.*step 4"):
        tr.train(cfg(tmp_path))
    assert read_training_checkpoint(tmp_path / "run" / CHECKPOINT)["step"] == 4


def test_bad_settings_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        tr.config_from_preset("huge")
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        tr.train(cfg(tmp_path, dataset="mnist"))
    with pytest.raises(ValueError, match="unknown model preset"):
        tr.train(cfg(tmp_path, model="vit_giant"))
    with pytest.raises(ValueError, match="smaller than the number of processes"):
        tr.check_config(cfg(tmp_path, batch_size=2), world=4)
    with pytest.raises(ValueError, match="does not split evenly"):
        tr.check_config(cfg(tmp_path, batch_size=6), world=4)
    with pytest.raises(ValueError, match="masking must be one of"):
        tr.check_config(cfg(tmp_path, masking="checkerboard"))
    with pytest.raises(ValueError, match="grid masking keeps one patch of every 2x2"):
        tr.check_config(cfg(tmp_path, masking="grid", mask_ratio=0.5))
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(PermissionError, match="not writable"):
        tr.train(cfg(tmp_path, output_dir=str(blocker / "run")))


def test_nothing_written_is_lost(tmp_path):
    run = cfg(tmp_path, epochs=1)
    tr.train(run)
    path = tmp_path / "run" / CHECKPOINT
    good = path.read_bytes()
    with pytest.raises(FileExistsError, match="--resume"):
        tr.train(run)  # a fresh run would overwrite the checkpoint
    with pytest.raises(ValueError, match="these differ: batch_size"):
        tr.train(dataclasses.replace(run, batch_size=64), resume=True)
    # a checkpoint of another architecture: the mismatched keys are named
    state = read_training_checkpoint(path)
    state["model"] = mt.mae_from_preset("vit_tiny_patch4").state_dict()
    torch.save(state, path)
    other = path.read_bytes()
    with pytest.raises(ValueError, match="shapes differ for .*blocks.0.attn.qkv"):
        tr.train(run, resume=True)
    assert path.read_bytes() == other
    path.write_bytes(good[: len(good) // 3])  # truncated
    with pytest.raises(ValueError, match="could not read the checkpoint"):
        tr.train(run, resume=True)
    assert len(path.read_bytes()) == len(good) // 3
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tr.train(dataclasses.replace(run, output_dir=str(tmp_path / "new")), resume=True)


def test_cli(tmp_path, capsys):
    out = str(tmp_path / "cli")
    assert tr.main(["--max-steps", "3", "--synthetic-size", "256", "--batch-size", "32",
                    "--output-dir", out, "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "dataset: synthetic" in printed and "device: cpu" in printed
    assert tr.main(["--resume", "--output-dir", out, "--batch-size", "64"]) == 1
    assert "batch_size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        tr.main(["--dataset", "imagenet"])


def _cli(*args, env=None) -> list[str]:
    return [sys.executable, "-m", "mae_tutorial.train", "--model", "vit_mini_patch4",
            "--synthetic-size", "256", "--batch-size", "32", "--no-progress", *args]


def test_killing_at_any_moment_leaves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "killed"
    ckpt = out / CHECKPOINT
    args = ["--max-steps", "100000", "--checkpoint-every", "1", "--output-dir", str(out)]
    model = mt.mae_from_preset("vit_mini_patch4")
    last_step = 0
    for round_ in range(3):
        proc = subprocess.Popen(_cli(*args, *(["--resume"] if round_ else [])),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 120
        while time.time() < deadline:  # wait until this round has written a checkpoint
            if ckpt.exists() and read_training_checkpoint(ckpt)["step"] > last_step:
                break
            time.sleep(0.05)
        time.sleep(0.1 + 0.37 * round_)  # kill somewhere in the middle of the writes
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        state = read_training_checkpoint(ckpt)
        mt.load_weights(model, state["model"])
        assert state["step"] > last_step
        last_step = state["step"]
    # the next start sweeps away temporary files that a killed write left behind
    (out / f".{CHECKPOINT}.tmp-1").write_bytes(b"partial")
    subprocess.run(_cli(*args, "--resume", "--stop-after", "1"), check=True, capture_output=True)
    assert not list(out.glob(".*.tmp-*"))


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_processes_train_the_same_model_as_one(tmp_path):
    # in fp32: bf16 autocast (the default on CPUs with native bf16) rounds differently when
    # the batch is split, by more than the tolerance below
    common = ["--max-steps", "3", "--checkpoint-every", "3", "--amp", "off"]
    one = subprocess.run(_cli(*common, "--output-dir", str(tmp_path / "one")),
                         capture_output=True, text=True, timeout=300)
    assert one.returncode == 0, one.stderr
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", *_cli(*common, "--output-dir",
                                                      str(tmp_path / "two"))[1:]],
                         capture_output=True, text=True, timeout=300, env=env)
    assert two.returncode == 0, two.stderr[-3000:]
    assert "x 2 processes" in two.stdout
    a, b = weights(tmp_path / "one"), weights(tmp_path / "two")
    # Equal up to float summation order, which Adam's normalized step can amplify to ~1e-5;
    # a wrong data share would differ by ~1e-3 (three steps at lr ~7e-4).
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 5e-5, worst
    # the logged loss is the whole global batch's, not rank 0's share
    logged = [[r["loss"] for r in read_metrics(tmp_path / name)] for name in ("one", "two")]
    assert logged[0] == pytest.approx(logged[1], rel=1e-5)
    torch.manual_seed(0)  # the trainer's initial weights: training did move them
    initial = mt.mae_from_preset("vit_mini_patch4").state_dict()
    assert all(torch.equal(a[k], initial[k]) for k in ("pos_embed", "decoder_pos_embed"))
    assert (a["blocks.0.attn.qkv.weight"] - initial["blocks.0.attn.qkv.weight"]).abs().max() > 1e-4


# ---- what a first GPU run would hit, simulated on the CPU


def test_cifar10_is_downloaded_by_one_process_while_the_others_wait(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(mt.batches, "load_dataset",
                        lambda *a, download, **k: calls.append(f"load download={download}"))
    monkeypatch.setattr(mt.batches.dist, "barrier", lambda: calls.append("barrier"))
    run = cfg(tmp_path, dataset="cifar10")
    mt.batches.load_training_data(run, world=2, local_rank=0)
    assert calls == ["load download=True", "barrier"]
    calls.clear()
    mt.batches.load_training_data(run, world=2, local_rank=1)
    assert calls == ["barrier", "load download=False"]

    def broken(*a, **k):
        raise RuntimeError("CIFAR-10 could not be loaded")

    calls.clear()
    monkeypatch.setattr(mt.batches, "load_dataset", broken)
    with pytest.raises(RuntimeError, match="could not be loaded"):
        mt.batches.load_training_data(run, world=2, local_rank=0)
    assert calls == ["barrier"]  # the others were released, not left waiting


def test_resume_on_fp16_hardware_after_a_run_without_a_scaler(tmp_path, capsys):
    tr.train(cfg(tmp_path, max_steps=4, stop_after=2, amp="off"))
    assert read_training_checkpoint(tmp_path / "run" / CHECKPOINT)["scaler"] == {}
    summary = tr.train(cfg(tmp_path, max_steps=4, amp="fp16"), resume=True)  # as on a T4
    assert summary["finished"] and math.isfinite(summary["loss"])
    printed = capsys.readouterr().out
    assert "resumed with amp 'off' -> 'fp16'" in printed and "starts fresh" in printed
    assert read_training_checkpoint(tmp_path / "run" / CHECKPOINT)["scaler"] != {}


def test_resume_may_change_the_settings_that_exist_for_recovery(tmp_path):
    tr.train(cfg(tmp_path, max_steps=4, stop_after=2))
    tr.train(cfg(tmp_path, max_steps=4, base_lr=5e-4, clip_grad=1.0), resume=True)
    records = read_metrics(tmp_path / "run")
    change = [r for r in records if "resumed_with" in r]
    assert change == [{"step": 2, "epoch": 2 / 8, "resumed_with": {
        "base_lr": [1e-3, 5e-4], "clip_grad": [None, 1.0]}}]
    lrs = {r["step"]: r["lr"] for r in records if "lr" in r}
    same = [mt.optim.lr_at(s - 1, 4, 1e-3 * 32 / 256, 0.0, 1) for s in (1, 2, 3, 4)]
    halved = [mt.optim.lr_at(s - 1, 4, 5e-4 * 32 / 256, 0.0, 1) for s in (3, 4)]
    assert [lrs[1], lrs[2]] == pytest.approx(same[:2]) and [lrs[3], lrs[4]] == pytest.approx(halved)
    mt.viz.plot_metrics(records)  # the resume line does not disturb the plot
    with pytest.raises(ValueError, match="these differ: batch_size"):
        tr.train(cfg(tmp_path, max_steps=4, batch_size=64), resume=True)


def test_a_checkpoint_from_a_machine_with_more_gpus_resumes(monkeypatch):
    state = mt.runtime.rng_state()
    assert "cuda" not in state  # only what a step needs: CPU states, no per-GPU ones
    state["cuda"] = [torch.zeros(16, dtype=torch.uint8)] * 4  # an older 4-GPU checkpoint

    def fewer_gpus(states):
        raise IndexError("list index out of range")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", fewer_gpus)
    mt.runtime.set_rng_state(state)


def test_the_loop_reads_the_loss_only_at_the_logging_interval(tmp_path, monkeypatch):
    reads = {"n": 0}
    real = torch.Tensor.item

    def counted(self):  # reads by the package (PyTorch's own, e.g. in AdamW, are not ours)
        if "mae_tutorial" in sys._getframe(1).f_code.co_filename:
            reads["n"] += 1
        return real(self)

    monkeypatch.setattr(torch.Tensor, "item", counted)
    tr.train(cfg(tmp_path, max_steps=12, log_every=12, checkpoint_every=12))
    assert reads["n"] <= 3, reads  # not one host-device sync per step


def test_tf32_on_nvidia_gpus_only_and_only_while_training(monkeypatch, tmp_path):
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    before = matmul.allow_tf32, cudnn.allow_tf32
    try:
        matmul.allow_tf32 = cudnn.allow_tf32 = False
        with mt.runtime.tf32(torch.device("cpu")):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)
        with mt.runtime.tf32(torch.device("cuda")):
            assert (matmul.allow_tf32, cudnn.allow_tf32) == (True, True)
        assert (matmul.allow_tf32, cudnn.allow_tf32) == (False, False)  # restored
        # a run (here, as if on a GPU) leaves the settings it found
        seen = []
        monkeypatch.setattr(tr, "pick_device", lambda name=None: torch.device("cuda"))
        monkeypatch.setattr(tr, "_train", lambda cfg, resume, state: seen.append(matmul.allow_tf32))
        tr.train(cfg(tmp_path))
        assert seen == [True] and matmul.allow_tf32 is False
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = before


def test_gpu_failures_come_with_a_hint():
    assert "--accum-steps" in mt.runtime.failure_hint(torch.OutOfMemoryError("CUDA out of memory"))
    assert "NCCL" in mt.runtime.failure_hint(RuntimeError("NCCL error: unhandled system error"))
    compile_error = RuntimeError("BackendCompilerFailed: inductor")
    assert "without --compile" in mt.runtime.failure_hint(compile_error)
    assert mt.runtime.failure_hint(RuntimeError("something else")) == ""


def test_ddp_does_not_rebroadcast_the_constant_position_tables(tmp_path, monkeypatch):
    made = {}

    class RecordingDDP(torch.nn.Module):
        def __init__(self, module, **kwargs):
            super().__init__()
            made.update(kwargs)
            self.module = module

    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")  # as under torchrun, one process
    monkeypatch.setattr(tr.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(tr.nn.parallel, "DistributedDataParallel", RecordingDDP)
    run = tr.setup(cfg(tmp_path))
    assert isinstance(run.forward, RecordingDDP) and made["broadcast_buffers"] is False


@pytest.mark.parametrize("masking", ["grid", "block"])
def test_ablation_maskings_remove_the_patches_they_promise(tmp_path, masking):
    """Table 1f's alternatives reach the model as noise: grid keeps exactly one patch of every
    2x2 square; block removes rectangles; both keep the exact count K and train."""
    from mae_tutorial.batches import step_batches

    c = cfg(tmp_path, masking=masking, max_steps=2)
    data = mt.data.load_dataset("synthetic", synthetic_size=256)
    imgs, noise = next(step_batches(c, data, torch.device("cpu"), stop=1))
    _, mask, _ = mt.random_masking(torch.zeros(32, 64, 1), 0.75, noise)
    grid = mask.view(32, 8, 8)
    assert (mask.sum(1) == 48).all()
    if masking == "grid":  # one visible patch per 2x2 square, all at the same phase
        squares = grid.view(32, 4, 2, 4, 2).sum((2, 4))
        assert (squares == 3).all()
    else:  # removed patches come in runs: most removed patches touch another removed one
        pad = torch.nn.functional.pad(grid, (1, 1, 1, 1))
        neighbours = pad[:, :-2, 1:-1] + pad[:, 2:, 1:-1] + pad[:, 1:-1, :-2] + pad[:, 1:-1, 2:]
        assert (neighbours[grid.bool()] >= 2).float().mean() > 0.8
    assert tr.train(c)["finished"]


def test_ablation_model_fields_change_the_model(tmp_path):
    tr.train(cfg(tmp_path, max_steps=1, decoder_depth=2, decoder_embed_dim=32,
                 encoder_mask_token=True))
    model = mt.mae_from_checkpoint(tmp_path / "run" / CHECKPOINT)
    assert len(model.decoder_blocks) == 2 and model.decoder_embed.out_features == 32
    assert model.encoder_mask_token is not None
    assert mt.config.model_config(cfg(tmp_path)) == mt.MODEL_PRESETS["vit_mini_patch4"].replace(
        norm_pix_loss=True)


@pytest.mark.parametrize("overrides", [{}, {"encoder_mask_token": True}, {"loss_on_all": True},
                                       {"norm_pix_loss": True, "decoder_depth": 2}])
def test_every_parameter_gets_a_gradient(tmp_path, overrides):
    """DDP waits for the gradient of every parameter, so no setting may hold one that its
    loss never reaches (the w/ [M] ablation has no decoder mask token)."""
    c = cfg(tmp_path, **overrides)
    torch.manual_seed(0)
    model = mt.build_mae(mt.config.model_config(c))
    model(torch.randn(2, 3, 32, 32), c.mask_ratio, loss_on_all=c.loss_on_all)[0].backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    keys = set(model.state_dict())
    assert ("mask_token" in keys) != bool(overrides.get("encoder_mask_token"))
    assert ("encoder_mask_token" in keys) == bool(overrides.get("encoder_mask_token"))

@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_encoder_mask_token_ablation_trains_under_torchrun(tmp_path):
    """Table 1c's variant under DDP: every parameter the model holds must get a gradient,
    or DistributedDataParallel fails at the second step."""
    out = tmp_path / "run"
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "mae_tutorial.train", "--preset", "quick", "--encoder-mask-token",
         "--max-steps", "3", "--synthetic-size", "256", "--batch-size", "16", "--device", "cpu",
         "--output-dir", str(out), "--no-progress", "--log-every", "1",
         "--checkpoint-every", "3"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "x 2 processes" in done.stdout
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == [1, 2, 3]
    state = read_training_checkpoint(out / CHECKPOINT)
    assert state["step"] == 3 and state["model_config"]["encoder_mask_token"] is True


def test_step_batches_default_to_one_epoch_and_split_the_batch_by_rank(tmp_path):
    from mae_tutorial.batches import step_batches

    c = cfg(tmp_path)  # batch 32
    data = mt.data.load_dataset("synthetic", synthetic_size=256)
    cpu = torch.device("cpu")
    whole = list(step_batches(c, data, cpu))
    assert len(whole) == 256 // 32 and whole[0][0].shape[0] == 32
    halves = [next(step_batches(c, data, cpu, stop=1, rank=r, world=2)) for r in (0, 1)]
    assert torch.equal(torch.cat([h[0] for h in halves]), whole[0][0])  # images
    assert torch.equal(torch.cat([h[1] for h in halves]), whole[0][1])  # masking noise


def test_the_run_seed_leaves_the_generated_training_images_alone(tmp_path):
    """Runs of several seeds compare on the same data: `seed` draws the weights, the order,
    the crops and the masks; `data_seed` draws the generated images."""
    from mae_tutorial.batches import load_training_data

    def images(**kw):
        return load_training_data(cfg(tmp_path, synthetic_size=64, **kw), 1, 0).images

    assert torch.equal(images(seed=0), images(seed=5))
    assert not torch.equal(images(data_seed=0), images(data_seed=1))


# ---- torchrun on several nodes


def test_bf16_on_a_gpu_without_it_is_refused_with_the_fix(tmp_path, monkeypatch, capsys):
    gpu = torch.device("cuda", 0)
    monkeypatch.setattr(tr, "gpu_has_native_bf16", lambda device: False)  # a T4, a V100
    with pytest.raises(ValueError, match="no bf16 in hardware.*Use --amp fp16"):
        tr.check_amp(gpu, "bf16")
    for amp in ("auto", "fp16", "off"):
        tr.check_amp(gpu, amp)
    tr.check_amp(torch.device("cpu"), "bf16")  # CPUs follow their own rule
    # the command line, as on a T4 (no GPU needed: the refusal comes before any GPU work)
    monkeypatch.setattr(tr, "pick_device", lambda name: gpu)
    code = tr.main(["--amp", "bf16", "--max-steps", "1", "--output-dir", str(tmp_path / "r"),
                    "--no-progress"])
    assert code == 1 and "Use --amp fp16" in capsys.readouterr().err
    monkeypatch.setattr(tr, "gpu_has_native_bf16", lambda device: True)  # an A100, an H100
    tr.check_amp(gpu, "bf16")


def test_on_several_nodes_only_global_rank_0_downloads(tmp_path, monkeypatch):
    ranks = []
    real = tr.load_training_data

    def recorded(cfg, world, local_rank):
        ranks.append(local_rank)
        return real(dataclasses.replace(cfg, dataset="synthetic"), 1, 0)  # nothing fetched

    monkeypatch.setattr(tr, "load_training_data", recorded)
    monkeypatch.setattr(tr, "join_process_group", lambda device: (device, False))
    for rank in (0, 2):  # the first process of node 0, and of node 1 (2 processes a node)
        monkeypatch.setenv("WORLD_SIZE", "4")
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("LOCAL_RANK", "0")
        tr.setup(cfg(tmp_path, dataset="cifar10"))
    # load_training_data downloads in the process it is told is 0, the others wait for it
    assert ranks == [0, 2]


def test_resume_reads_the_checkpoint_after_joining_onto_the_device(tmp_path, monkeypatch):
    tr.train(cfg(tmp_path, max_steps=4, stop_after=2))
    order = []
    join, read = tr.join_process_group, tr.run_folder_checkpoint

    def joined(device):
        order.append("join")
        return join(device)

    def reading(output_dir, resume, state=None, map_location="cpu"):
        order.append(("read", resume, str(map_location)))
        return read(output_dir, resume, state, map_location)

    monkeypatch.setattr(tr, "join_process_group", joined)
    monkeypatch.setattr(tr, "run_folder_checkpoint", reading)
    assert tr.train(cfg(tmp_path, max_steps=4), resume=True)["finished"]
    assert order == ["join", ("read", True, "cpu")]


def test_a_process_that_cannot_read_the_checkpoint_fails_every_process(tmp_path, monkeypatch):
    import types

    tr.train(cfg(tmp_path, max_steps=2))
    run = types.SimpleNamespace(out=tmp_path / "run", world=2, device=torch.device("cpu"))
    monkeypatch.setattr(tr.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(tr.dist, "all_reduce", lambda t: t.fill_(0.0))  # every read worked
    assert tr.read_resume_state(run)["step"] == 2
    monkeypatch.setattr(tr.dist, "all_reduce", lambda t: t.add_(1.0))  # the other one failed
    with pytest.raises(RuntimeError, match="another process could not read the checkpoint"):
        tr.read_resume_state(run)
    run.out = tmp_path / "elsewhere"  # this one fails: it raises its own error
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        tr.read_resume_state(run)


@pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed missing")
def test_two_gloo_processes_resume_a_run(tmp_path):
    """torchrun, 2 CPU processes (gloo): a session stops after 2 of 4 steps, the next one
    resumes it, each process reading the checkpoint once the process group exists."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node=2"]
    common = ["--max-steps", "4", "--checkpoint-every", "2", "--log-every", "1", "--amp", "off",
              "--device", "cpu", "--output-dir", str(out)]
    first = subprocess.run([*torchrun, *_cli(*common, "--stop-after", "2")[1:]],
                           capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run([*torchrun, *_cli("--resume", *common)[1:]],
                            capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "x 2 processes" in second.stdout and "at step 2" in second.stdout
    assert [r["step"] for r in read_metrics(out) if "loss" in r] == [1, 2, 3, 4]
    assert read_training_checkpoint(out / CHECKPOINT)["step"] == 4
