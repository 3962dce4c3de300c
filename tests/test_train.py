"""The training framework: config/registry, one PG2 step, exact resume, atomic checkpoints,
NaN handling, DDP on gloo, bad options. Runs on a tiny in-memory 32x16 dataset."""

from __future__ import annotations

import json
import os
import socket

import pytest
import torch

from _tiny_data import tiny_bundle, tiny_pg2_config
from fastpose.models import get_model, list_models, unwrap
from fastpose.train import checkpoint as ckpt_mod
from fastpose.train.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from fastpose.train.config import (apply_overrides, config_from_dict, config_to_dict, default_config,
                                   load_config, parse_args, save_config)
from fastpose.train.data import DataError, ResumableSampler, check_dataset_folder
from fastpose.train.loop import NonFiniteLossError, Trainer, train


# --- registry and config ----------------------------------------------------------------------

def test_registry_lists_pg2_and_rejects_unknown_names():
    assert "pg2" in list_models()
    with pytest.raises(ValueError, match=r"unknown model 'nope'; available models: .*pg2"):
        get_model("nope")


def test_cli_unknown_model_lists_models(capsys):
    with pytest.raises(SystemExit) as exc:
        parse_args(["--model", "nope"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'; available models: " in err
    listed = err.split("available models: ", 1)[1].split("\n", 1)[0].split(", ")
    assert {"pg2", "pot_gan", "patn", "spgnet"} <= set(listed) and listed == sorted(listed)


def test_presets_follow_the_authors_settings():
    m = default_config("pg2", "market:/x")
    f = default_config("pg2", "deepfashion:/x")
    s = default_config("pg2", "synthetic")
    assert (m.batch_size, m.model_cfg.lr, m.model_cfg.lambda_l1) == (16, 2e-5, 10.0)
    assert (m.model_cfg.stage1_steps, m.model_cfg.stage2_steps) == (22000, 38000)
    assert (f.batch_size, f.model_cfg.lambda_l1, f.model_cfg.canvas_h, f.model_cfg.canvas_w) == (1, 50.0, 256, 256)
    assert f.model_cfg.stage1_steps + f.model_cfg.stage2_steps == 80000
    assert not m.allow_random_features and not f.allow_random_features
    assert s.allow_random_features and s.model_cfg.stage1_steps < 5000


def test_cli_overrides_and_json_round_trip(tmp_path):
    cfg, ns, given = parse_args(["--model", "pg2", "--data", "market:/data/m", "--batch-size", "3",
                                 "--lambda-l1", "5.5", "--deterministic", "--amp", "bf16"])
    assert cfg.data_kind == "market" and cfg.data_dir == "/data/m"
    assert (cfg.batch_size, cfg.model_cfg.lambda_l1, cfg.deterministic, cfg.amp) == (3, 5.5, True, "bf16")
    assert cfg.model_cfg.stage1_steps == 22000  # preset kept where not overridden
    save_config(cfg, tmp_path / "config.json")
    back = load_config(tmp_path / "config.json")
    assert config_to_dict(back) == config_to_dict(cfg)
    assert config_from_dict(json.loads((tmp_path / "config.json").read_text())).model_cfg == cfg.model_cfg


def test_cli_rejects_bad_values(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--model", "pg2", "--batch-size", "many"])
    with pytest.raises(SystemExit):
        parse_args(["--model", "pg2", "--data", "market"])  # no folder
    assert "market:DIR" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown option"):
        apply_overrides(default_config("pg2"), {"no_such_option": 1})


# --- training ---------------------------------------------------------------------------------

def _params(net):
    return {k: v.detach().clone() for k, v in unwrap(net).state_dict().items()}


def test_one_pg2_step_updates_only_g1_in_stage1(tmp_path):
    cfg = tiny_pg2_config(tmp_path, max_steps=1, eval_pairs=-1)
    t = Trainer(cfg, data=tiny_bundle(), progress=False)
    before = {n: _params(net) for n, net in t.model.nets.items()}
    t.train()
    changed = {n: any(not torch.equal(before[n][k], v) for k, v in _params(net).items())
               for n, net in t.model.nets.items()}
    assert changed == {"g1": True, "g2": False, "d": False}
    assert set(t.history[0]) == {"g1_pose_l1"} and torch.isfinite(torch.tensor(t.history[0]["g1_pose_l1"]))
    run = tmp_path / "run"
    assert (run / "config.json").is_file() and (run / "log.csv").is_file()
    assert (run / "checkpoints" / "latest.pt").is_file() and (run / "samples" / "0000001.png").is_file()


def test_one_step_on_a_tiny_synthetic_set_through_the_cli(tmp_path, monkeypatch):
    from fastpose.train.__main__ import main
    monkeypatch.setenv("FASTPOSE_CACHE", str(tmp_path / "cache"))
    assert main(["--model", "pg2", "--synthetic-train-ids", "2", "--synthetic-test-ids", "1",
                 "--out", str(tmp_path), "--run-name", "syn", "--max-steps", "1", "--batch-size", "2",
                 "--image-h", "32", "--image-w", "16", "--base-channels", "4", "--d-base-channels", "4",
                 "--eval-pairs", "2", "--workers", "0", "--sample-pairs", "2", "--device", "cpu"]) == 0
    assert (tmp_path / "cache" / "synthetic").is_dir()
    metrics = json.loads((tmp_path / "syn" / "metrics.json").read_text())
    assert metrics["step"] == 1 and metrics["pairs"] == 2 and set(metrics["model"]) == {"ssim", "mask_ssim", "pssim"}


def test_full_tiny_schedule_writes_metrics_with_baseline(tmp_path):
    cfg = tiny_pg2_config(tmp_path)
    metrics = train(cfg, data=tiny_bundle(), progress=False)
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["pairs"] == 4 and saved["step"] == 4
    for who in ("model", "copy_source"):
        assert 0 < saved[who]["ssim"] <= 1 and 0 < saved[who]["mask_ssim"] <= 1
    assert metrics["model"] == saved["model"]
    log = (tmp_path / "run" / "log.csv").read_text().splitlines()
    assert log[0].startswith("step,stage,g1_pose_l1") and len(log) == 5
    assert "stage2" in log[-1]


def test_resume_continues_exactly(tmp_path):
    # Uninterrupted: 4 steps (2 in stage 1, 2 in stage 2: G2, D with BatchNorm, Adam states).
    full = Trainer(tiny_pg2_config(tmp_path / "a", eval_pairs=-1), data=tiny_bundle(), progress=False)
    full.train()
    # Interrupted after 3 steps, then resumed in a new Trainer.
    part = Trainer(tiny_pg2_config(tmp_path / "b", max_steps=3, eval_pairs=-1), data=tiny_bundle(),
                   progress=False)
    part.train()
    torch.manual_seed(12345)  # resuming must not depend on the caller's RNG state
    resumed = Trainer(tiny_pg2_config(tmp_path / "b", eval_pairs=-1), data=tiny_bundle(),
                      resume=str(tmp_path / "b" / "run"), progress=False)
    assert resumed.step == 3
    resumed.train()
    assert resumed.history == full.history[3:]
    for n in full.model.nets:
        for k, v in _params(full.model.nets[n]).items():
            assert torch.equal(v, _params(resumed.model.nets[n])[k]), (n, k)
    rows = (tmp_path / "b" / "run" / "log.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2", "3", "4"]


def test_nan_loss_stops_with_the_step_or_is_skipped(tmp_path):
    class Poisoned(torch.utils.data.Dataset):
        def __init__(self, base):
            self.base = base

        def __len__(self):
            return len(self.base)

        def __getitem__(self, i):
            s = dict(self.base[i])
            s["target_image"] = s["target_image"] * float("nan")
            return s

    data = tiny_bundle()
    data.train = Poisoned(data.train)
    with pytest.raises(NonFiniteLossError, match=r"'g1'.*at step 1 \(stage stage1\)"):
        train(tiny_pg2_config(tmp_path / "stop"), data=data, progress=False)
    t = Trainer(tiny_pg2_config(tmp_path / "skip", nan_policy="skip", max_steps=2, eval_pairs=-1),
                data=data, progress=False)
    before = _params(t.model.nets["g1"])
    with pytest.warns(RuntimeWarning, match="update skipped"):
        t.train()
    assert t.skipped_updates == 2
    assert all(torch.equal(before[k], v) for k, v in _params(t.model.nets["g1"]).items())


# --- checkpoints ------------------------------------------------------------------------------

def test_checkpoint_write_is_atomic_under_a_crash(tmp_path, monkeypatch):
    d = tmp_path / "checkpoints"
    save_checkpoint({"step": 1, "nets": {"g": {"w": torch.ones(3)}}}, d, 1)
    real_save = torch.save

    def crash(obj, f, *a, **k):  # write half a file, then die
        real_save({"partial": torch.zeros(1000)}, f)
        f.truncate(100)
        raise KeyboardInterrupt("simulated crash")

    monkeypatch.setattr(ckpt_mod.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint({"step": 2, "nets": {"g": {"w": torch.zeros(3)}}}, d, 2)
    monkeypatch.setattr(ckpt_mod.torch, "save", real_save)
    latest = load_checkpoint(d / "latest.pt")
    assert latest["step"] == 1 and torch.equal(latest["nets"]["g"]["w"], torch.ones(3))
    assert sorted(p.name for p in d.iterdir()) == ["0000001.pt", "latest.pt"]  # no temp files left


def test_keep_last_checkpoints(tmp_path):
    for step in range(1, 5):
        save_checkpoint({"step": step, "nets": {}}, tmp_path, step, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0000003.pt", "0000004.pt", "latest.pt"]
    assert load_checkpoint(tmp_path / "latest.pt")["step"] == 4


def test_unreadable_checkpoint_names_the_file(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="cannot read checkpoint .*bad.pt"):
        load_checkpoint(bad)
    torch.save({"something": 1}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a fastpose checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match="holds no checkpoint"):
        load_checkpoint(tmp_path)


def test_train_cli_reports_bad_checkpoint_and_missing_data(tmp_path, capsys):
    from fastpose.train.__main__ import main
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00" * 10)
    assert main(["--model", "pg2", "--resume", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # without --model the run's model is read from the checkpoint
        main(["--resume", str(bad)])
    assert "cannot read checkpoint" in capsys.readouterr().err
    assert main(["--model", "pg2", "--data", f"market:{tmp_path / 'nowhere'}", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "market data folder" in err and "does not exist" in err


def test_incomplete_data_folder_lists_missing_files(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(DataError, match="market-annotation-train.csv"):
        check_dataset_folder(tmp_path, "market")


def test_sampler_resumes_mid_epoch():
    ds = list(range(20))
    a = ResumableSampler(ds, 3, rank=0, world_size=1, seed=5)
    a.set_position(1, 0)
    full = list(a)
    b = ResumableSampler(ds, 3, rank=0, world_size=1, seed=5)
    b.set_position(1, 2)
    assert list(b) == full[6:18] and len(full) == 18


# --- DDP ----------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    from pathlib import Path
    cfg = tiny_pg2_config(Path(out), batch_size=2, eval_pairs=2)
    t = Trainer(cfg, data=tiny_bundle(), progress=False)
    t.train()
    # Parameters (not BatchNorm running stats, which each rank updates locally after the last
    # buffer broadcast) must be identical on both ranks.
    torch.save({n: {k: p.detach().clone() for k, p in unwrap(net).named_parameters()}
                for n, net in t.model.nets.items()}, Path(out) / f"params{rank}.pt")
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_gloo(tmp_path):
    torch.multiprocessing.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2)
    p0, p1 = torch.load(tmp_path / "params0.pt"), torch.load(tmp_path / "params1.pt")
    for n in p0:
        for k in p0[n]:
            torch.testing.assert_close(p0[n][k], p1[n][k], rtol=0, atol=0, msg=f"{n}.{k} differs")
    run = tmp_path / "run"
    assert (run / "metrics.json").is_file() and load_checkpoint(run)["step"] == 4
    assert len(load_checkpoint(run)["rng"]) == 2


def test_cli_trains_evaluates_on_a_patn_folder(tmp_path, capsys):
    """The real data path: a PATN-layout Market folder, resized to 32x16, through the CLIs."""
    from fastpose import evaluate
    from fastpose.train.__main__ import main
    from patn_folder import make_patn_folder
    root = tmp_path / "market"
    make_patn_folder(root, "train", parsing=False)
    make_patn_folder(root, "test", parsing=False)
    args = ["--model", "pg2", "--data", f"market:{root}", "--out", str(tmp_path / "runs"),
            "--run-name", "r", "--image-h", "32", "--image-w", "16", "--batch-size", "2",
            "--base-channels", "4", "--z-dim", "4", "--d-base-channels", "4", "--stage1-steps", "1",
            "--stage2-steps", "1", "--eval-pairs", "2", "--workers", "0", "--device", "cpu",
            "--sample-pairs", "2"]
    assert main(args) == 0
    run = tmp_path / "runs" / "r"
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["data"] == f"market:{root}" and cfg["flip_prob"] == 0.5 and cfg["batch_size"] == 2
    assert json.loads((run / "metrics.json").read_text())["pairs"] == 2
    assert evaluate.main(["--run", str(run), "--metrics", "ssim"]) == 0
    printed = capsys.readouterr().out
    assert "| | SSIM ↑ |\n" in printed and "| pg2 (step 2) |" in printed
    assert json.loads((run / "eval.json").read_text())["model"].keys() == {"ssim"}
    # Resuming a finished run with a longer schedule continues it.
    assert main(["--resume", str(run), "--stage2-steps", "2", "--eval-pairs", "-1"]) == 0
    assert load_checkpoint(run)["step"] == 3


def test_resume_is_exact_with_flips_on_a_patn_folder(tmp_path):
    from patn_folder import make_patn_folder
    root = tmp_path / "market"
    make_patn_folder(root, "train", parsing=False)
    make_patn_folder(root, "test", parsing=False)

    def cfg(out, **over):
        return tiny_pg2_config(out, data=f"market:{root}", image_h=32, image_w=16, batch_size=2,
                               flip_prob=0.5, eval_pairs=-1, **over)

    full = Trainer(cfg(tmp_path / "a"), progress=False)
    full.train()
    Trainer(cfg(tmp_path / "b", max_steps=3), progress=False).train()
    resumed = Trainer(cfg(tmp_path / "b"), resume=str(tmp_path / "b" / "run"), progress=False)
    resumed.train()
    assert len(full.history) == 4 and resumed.history == full.history[3:]
