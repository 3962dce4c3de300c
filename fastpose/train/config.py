"""Run configuration: a dataclass of loop options plus the model's own dataclass, presets per
model x dataset kind, command-line parsing generated from the dataclasses, and JSON round trips.

Resolution order (later wins): dataclass defaults < the model's preset for the dataset kind <
command-line options. The resolved config is saved as ``<run>/config.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, Sequence

from fastpose.models.registry import get_model, list_models

DATA_KINDS = ("synthetic", "market", "deepfashion")


@dataclass
class TrainConfig:
    """Options of the generic loop (the model's options live in ``model_cfg``)."""
    model: str = "pot_gan"  # registered model name (python -m fastpose.train --model NAME)
    data: str = "synthetic"  # synthetic | market:DIR | deepfashion:DIR
    out: str = "runs"  # parent folder of run directories
    run_name: str = ""  # run directory name under `out` (default: <00000>-<model>-<data kind>)
    seed: int = 0  # seeds python, numpy and torch (per rank: seed + rank)
    deterministic: bool = False  # torch.use_deterministic_algorithms + cudnn.deterministic
    device: str = "auto"  # auto (cuda if available) | cpu | cuda | cuda:N (DDP uses LOCAL_RANK)
    impl: str = "auto"  # fastpose ops implementation: auto | ext | ref
    amp: str = "none"  # none | bf16 (autocast on CUDA) | fp16 (autocast + GradScaler on CUDA)
    compile: bool = False  # wrap each network in torch.compile
    batch_size: int = 16  # samples per step per process
    workers: int = 0  # DataLoader worker processes
    image_h: int = 0  # resize the dataset's images to this height (0 = native size)
    image_w: int = 0  # resize width (0 = native size)
    synthetic_preset: str = "market"  # synthetic generator preset (look: market-like or fashion-like)
    synthetic_train_ids: int = 0  # identities in the synthetic train split (0 = generator default)
    synthetic_test_ids: int = 0  # identities in the synthetic test split (0 = generator default)
    flip_prob: float = 0.0  # probability of mirroring a training pair (left-right flip augmentation)
    log_every: int = 10  # steps between CSV/TensorBoard log rows
    sample_every: int = 1000  # steps between sample grids (0 = only at the end)
    checkpoint_every: int = 2000  # steps between checkpoints (0 = only at the end)
    keep_checkpoints: int = 2  # numbered checkpoints kept besides latest.pt (0 = all)
    sample_pairs: int = 8  # fixed test pairs shown in the sample grids
    nan_policy: str = "stop"  # on a NaN/Inf loss: stop (raise, naming the step) | skip (the update)
    max_steps: int = 0  # stop after this many steps in total (0 = the model's full schedule)
    eval_pairs: int = 2000  # held-out pairs for the final metrics (0 = all test pairs, -1 = none)
    eval_batch_size: int = 32  # batch size of the final evaluation
    vgg_weights: str = ""  # directory or file holding torchvision's VGG weights (default: torch hub cache)
    allow_random_features: bool = False  # offline: fall back to random VGG weights (synthetic only)
    notes: list = field(default_factory=list)  # warnings recorded into the run (e.g. random VGG)
    model_cfg: Any = None  # the model's dataclass config (filled by resolve_config)

    @property
    def data_kind(self) -> str:
        return self.data.split(":", 1)[0]

    @property
    def data_dir(self) -> Optional[str]:
        return self.data.split(":", 1)[1] if ":" in self.data else None


# Fields that are not command-line options.
_INTERNAL = {"model_cfg", "notes"}


def check_data_spec(spec: str) -> None:
    from fastpose.train.data import DATA_BUILDERS  # kinds registered with @register_data
    kind = spec.split(":", 1)[0]
    if kind not in DATA_KINDS and kind not in DATA_BUILDERS:
        raise ValueError(f"--data must be synthetic, market:DIR or deepfashion:DIR, got {spec!r}")
    if kind in ("market", "deepfashion") and (":" not in spec or not spec.split(":", 1)[1]):
        raise ValueError(f"--data {kind} needs a folder: --data {kind}:DIR")


def default_config(model: str, data: str = "synthetic") -> TrainConfig:
    """Defaults + the model's preset for the dataset kind (no command-line options)."""
    check_data_spec(data)
    cls = get_model(model)
    cfg = TrainConfig(model=model, data=data)
    cfg.model_cfg = cls.config_class()
    kind = data.split(":", 1)[0]
    preset = getattr(cls, "presets", {}).get(kind, {})
    if kind == "synthetic":
        # Only the synthetic demo may fall back to random feature networks when offline.
        preset = {"allow_random_features": True, **preset}
    apply_overrides(cfg, preset)
    return cfg


def apply_overrides(cfg: TrainConfig, values: dict[str, Any]) -> None:
    """Set loop or model fields by name (names are unique across both dataclasses)."""
    loop = {f.name for f in fields(TrainConfig)}
    model = {f.name for f in fields(cfg.model_cfg)}
    for k, v in values.items():
        if k in loop and k not in _INTERNAL:
            setattr(cfg, k, v)
        elif k in model:
            setattr(cfg.model_cfg, k, v)
        else:
            raise ValueError(f"unknown option {k!r} for model {cfg.model}")


def _field_type(cls: type, f: dataclasses.Field) -> type:
    hints = typing.get_type_hints(cls)
    return hints.get(f.name, str)


def _parse_bool(s: str) -> bool:
    if s.lower() in ("1", "true", "yes", "on"):
        return True
    if s.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {s!r}")


def _add_dataclass_options(parser: argparse.ArgumentParser, cls: type, title: str,
                           resolved: Optional[object] = None) -> None:
    group = parser.add_argument_group(title)
    comments = _field_comments(cls)
    for f in fields(cls):
        if f.name in _INTERNAL or f.name in ("model", "data"):
            continue
        t = _field_type(cls, f)
        flag = "--" + f.name.replace("_", "-")
        helptext = comments.get(f.name, "").replace("%", "%%")
        if resolved is not None:
            helptext += f" [{getattr(resolved, f.name)!r}]"
        if t is bool:
            group.add_argument(flag, dest=f.name, type=_parse_bool, nargs="?", const=True,
                               default=argparse.SUPPRESS, metavar="BOOL", help=helptext)
        else:
            group.add_argument(flag, dest=f.name, type=t if t in (int, float) else str,
                               default=argparse.SUPPRESS, help=helptext)


def _field_comments(cls: type) -> dict[str, str]:
    """The ``# comment`` after each field in the class source, used as --help text."""
    import inspect
    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    out = {}
    for line in src.splitlines():
        s = line.strip()
        if ":" in s and "#" in s and not s.startswith(("#", "def", '"')):
            name = s.split(":", 1)[0].strip()
            if name.isidentifier():
                out[name] = s.split("#", 1)[1].strip()
    return out


def build_parser(model: Optional[str] = None, prog: str = "python -m fastpose.train",
                 resolved: Optional[TrainConfig] = None) -> argparse.ArgumentParser:
    """The command-line parser; with ``resolved`` (defaults + preset) the help shows its values."""
    p = argparse.ArgumentParser(
        prog=prog, description="Train a pose-guided person generator. Values in [brackets] are the "
                               "defaults with the model's preset for --data.")
    p.add_argument("--model", default=None, help=f"model to train: {', '.join(list_models())}")
    p.add_argument("--data", default=None, help="synthetic (default) | market:DIR | deepfashion:DIR")
    p.add_argument("--resume", default=None, metavar="RUN_OR_CKPT",
                   help="continue a run (its directory or a checkpoint file)")
    p.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")
    _add_dataclass_options(p, TrainConfig, "loop options", resolved)
    if model is not None:
        _add_dataclass_options(p, get_model(model).config_class, f"{model} options",
                               resolved.model_cfg if resolved is not None else None)
    return p


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[TrainConfig, argparse.Namespace, dict]:
    """Parse the command line into (resolved config, namespace, explicitly given options).

    The model is read first so that its options exist; an unknown model is an error that lists
    the registered ones.
    """
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--model", default=None)
    pre.add_argument("--resume", default=None)
    pre.add_argument("--data", default=None)
    known, _ = pre.parse_known_args(argv)
    model = known.model
    if model is None and known.resume:
        model = _model_of_run(known.resume, build_parser())
    model = model or "pot_gan"
    try:
        get_model(model)
    except ValueError as exc:
        build_parser().error(str(exc))
    try:
        preset = default_config(model, known.data or "synthetic")
    except ValueError as exc:
        build_parser(model).error(str(exc))
    parser = build_parser(model, resolved=preset)
    ns = parser.parse_args(argv)
    given = {k: v for k, v in vars(ns).items() if k not in ("model", "data", "resume", "dry_run")}
    try:
        cfg = default_config(model, ns.data or "synthetic")
        apply_overrides(cfg, given)
    except ValueError as exc:
        parser.error(str(exc))
    return cfg, ns, given


def _model_of_run(run_or_ckpt: str, parser: argparse.ArgumentParser) -> str:
    """The model name of a run or checkpoint (its config.json, else the checkpoint's config)."""
    try:
        return load_config(_config_path_of(run_or_ckpt)).model
    except (FileNotFoundError, ValueError):
        from fastpose.train.checkpoint import CheckpointError, load_checkpoint
        try:
            return load_checkpoint(run_or_ckpt)["config"]["model"]
        except (CheckpointError, KeyError, TypeError) as exc:
            parser.error(f"--resume {run_or_ckpt}: {exc}")


def _config_path_of(run_or_ckpt: str) -> Path:
    p = Path(run_or_ckpt)
    if p.is_dir():
        return p / "config.json"
    return p.parent.parent / "config.json" if p.parent.name == "checkpoints" else p.with_name("config.json")


# --- JSON round trip --------------------------------------------------------------------------

def config_to_dict(cfg: TrainConfig) -> dict[str, Any]:
    d = {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.name != "model_cfg"}
    d["model_cfg"] = dataclasses.asdict(cfg.model_cfg)
    return d


def config_from_dict(d: dict[str, Any]) -> TrainConfig:
    d = dict(d)
    cls = get_model(d["model"])
    mfields = {f.name for f in fields(cls.config_class)}
    mvals = d.pop("model_cfg", {}) or {}
    unknown = set(mvals) - mfields
    if unknown:
        raise ValueError(f"config has unknown {d['model']} options {sorted(unknown)}")
    lfields = {f.name for f in fields(TrainConfig)}
    unknown = set(d) - lfields
    if unknown:
        raise ValueError(f"config has unknown options {sorted(unknown)}")
    cfg = TrainConfig(**d)
    cfg.model_cfg = cls.config_class(**mvals)
    return cfg


def save_config(cfg: TrainConfig, path: str | Path) -> None:
    Path(path).write_text(json.dumps(config_to_dict(cfg), indent=2) + "\n")


def load_config(path: str | Path) -> TrainConfig:
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"no run config at {p}")
    try:
        return config_from_dict(json.loads(p.read_text()))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"cannot read run config {p}: {exc}") from exc
