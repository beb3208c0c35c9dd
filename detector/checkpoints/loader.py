"""Load any supported checkpoint into the canonical Xception with its config; save our own.

``load_checkpoint`` verifies the file (size, sha256 against the caller, the registry of public
releases and ``manifest.json``), reads it by its container, applies the mapping rules, decides
the family (and so the preprocessing/head config) and returns a strictly loaded module. The
project's own format is safetensors with canonical key names and the ``ModelConfig`` in the
header metadata.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from detector.checkpoints.formats import MAX_CHECKPOINT_BYTES, Container, RawCheckpoint
from detector.checkpoints.formats import read_checkpoint as _read_checkpoint
from detector.checkpoints.mapping import (
    CanonicalWeights,
    build_canonical_module,
    canonicalize_state_dict,
    unwrap_state_dict,
)
from detector.checkpoints.registry import (
    IMAGENET,
    OWN_FAMILY,
    Expectation,
    known_families,
    known_file,
    manifest_entry,
    normalise_sha256,
    sha256_file,
)
from detector.config import FAMILY_CONFIGS, ModelConfig
from detector.ensemble import LogitEnsemble, member_key, split_member_keys
from detector.errors import (
    CheckpointError,
    NotADetector,
    UnsupportedCheckpoint,
    WeightsNotInstalled,
)
from detector.model import Classifier, RuntimeOptions

_log = logging.getLogger(__name__)

OWN_FORMAT = "deepfake-bot/1"
FORMAT_KEY = "format"
CONFIG_KEY = "deepfake_bot.config"
WEIGHTS_ENV = "DEEPFAKE_BOT_WEIGHTS"
DEFAULT_WEIGHTS_NAME = "deepfake-bot-xception.safetensors"
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SAVE_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_HOW_TO_FIX = (
    "Pass --weights PATH to a supported checkpoint (the project's .safetensors, FaceForensics++ "
    "all_*.p / full_*.p, HongguLiu deepfake_c0_xception.pkl, DeepfakeBench xception_best.pth or "
    f"ISPL Xception_*_bestval-*.pth), or set {WEIGHTS_ENV}=PATH."
)


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A verified, strictly loaded weight set and everything needed to use it."""

    module: nn.Module
    config: ModelConfig
    family: str
    sha256: str
    path: Path
    container: Container


# --- where the weights are ----------------------------------------------------------------------


def default_weights_path() -> Path:
    """``$DEEPFAKE_BOT_WEIGHTS`` if set, else ``<repo>/weights/`` + :data:`DEFAULT_WEIGHTS_NAME`."""
    env = os.environ.get(WEIGHTS_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    return REPO_ROOT / "weights" / DEFAULT_WEIGHTS_NAME


def resolve_weights(path: str | Path | None) -> Path:
    """The weights file to use; raises ``WeightsNotInstalled`` saying where it looked."""
    if path is None or str(path).strip() == "":
        found = default_weights_path()
        origin = (
            f"from {WEIGHTS_ENV}"
            if os.environ.get(WEIGHTS_ENV, "").strip()
            else f"the default location; no --weights given and {WEIGHTS_ENV} is not set"
        )
    else:
        found = Path(path).expanduser()
        origin = "the path given"
    if found.is_dir():
        raise WeightsNotInstalled(
            f"Detector weights: {found} ({origin}) is a folder, not a weights file. {_HOW_TO_FIX}"
        )
    if not found.is_file():
        raise WeightsNotInstalled(
            f"Detector weights not installed: no file at {found} ({origin}). {_HOW_TO_FIX}"
        )
    return found


# --- loading ------------------------------------------------------------------------------------


def load_checkpoint(
    path: str | Path, *, family: str | None = None, expected_sha256: str | None = None
) -> LoadedCheckpoint:
    """Verify, read and map a checkpoint; see the module docstring.

    ``family`` overrides the inferred family (one of ``FAMILY_CONFIGS`` or ``"deepfake-bot"``);
    ``expected_sha256`` pins the file's hash. Every failure is a ``CheckpointError`` subclass
    whose message starts with the file name.
    """
    if family is not None and family not in known_families():
        raise UnsupportedCheckpoint(
            f"unknown family {family!r}; choose one of {', '.join(known_families())}"
        )
    expected = normalise_sha256(expected_sha256) if expected_sha256 is not None else None
    file = resolve_weights(path)
    name = file.name
    size = file.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise UnsupportedCheckpoint(
            f"{name}: {size:,} bytes is larger than the 2 GiB limit for a checkpoint"
        )
    if size == 0:
        raise UnsupportedCheckpoint(f"{name}: the file is empty")

    digest = sha256_file(file)
    known = known_file(name)
    listed = manifest_entry(file)
    checks = [e for e in (known, listed) if e is not None]
    if expected is not None:
        checks.insert(0, Expectation(source="the expected sha256 given", sha256=expected))
    for check in checks:
        check.check(name, size, digest)

    try:
        raw = _read_checkpoint(file)
        flat = unwrap_state_dict(raw.payload)
        stored = _stored_config(raw)
        if stored is not None and stored.members > 1:
            weights, module = _ensemble(flat, stored.members)
        else:
            weights = canonicalize_state_dict(flat)
            module = build_canonical_module(weights)
        config = _choose_config(raw, weights, name, family, known, listed)
        if config.members != _stored_members(stored):
            raise UnsupportedCheckpoint(
                f"family {config.family!r} describes {config.members} network(s), the file "
                f"holds {_stored_members(stored)}"
            )
    except CheckpointError as exc:
        raise type(exc)(f"{name}: {exc}") from exc
    except (RuntimeError, ValueError, OSError, EOFError) as exc:
        raise UnsupportedCheckpoint(f"{name}: could not be read ({exc})") from exc
    _log.info(
        "loaded %s: %s %s, family %s, %d output(s), sha256 %s",
        name,
        raw.container,
        raw.kind,
        config.family,
        weights.num_classes,
        digest[:16],
    )
    return LoadedCheckpoint(module, config, config.family, digest, file, raw.container)


def load_classifier(
    path: str | Path,
    *,
    family: str | None = None,
    expected_sha256: str | None = None,
    options: RuntimeOptions | None = None,
) -> Classifier:
    """:func:`load_checkpoint` wrapped in a ready-to-run :class:`~detector.model.Classifier`."""
    loaded = load_checkpoint(path, family=family, expected_sha256=expected_sha256)
    return Classifier(loaded.module, loaded.config, options, sha256=loaded.sha256)


def _stored_members(stored: ModelConfig | None) -> int:
    return stored.members if stored is not None else 1


def _ensemble(flat: dict[str, torch.Tensor], count: int) -> tuple[CanonicalWeights, nn.Module]:
    """An ensemble file's members, each strictly loaded from its own canonical keys (no
    family prefix or wrapper: only our own format holds ensembles). Returns the first
    member's weights (the head every member shares) and the :class:`LogitEnsemble`."""
    try:
        parts = split_member_keys(flat, count)
    except ValueError as exc:
        raise UnsupportedCheckpoint(str(exc)) from None
    members, first = [], None
    for i, part in enumerate(parts):
        weights = canonicalize_state_dict(part)
        if weights.prefix is not None or weights.wrappers or weights.dropped:
            raise UnsupportedCheckpoint(f"ensemble member {i} is not in canonical key names")
        if first is not None and weights.num_classes != first.num_classes:
            raise UnsupportedCheckpoint("ensemble members have different heads")
        first = first or weights
        members.append(build_canonical_module(weights))
    assert first is not None  # count > 1 and split_member_keys gave every member keys
    return first, LogitEnsemble(members).eval()


def _stored_config(raw: RawCheckpoint) -> ModelConfig | None:
    """The config embedded by :func:`save_checkpoint`, if this is our own format."""
    meta = raw.metadata or {}
    if CONFIG_KEY not in meta and meta.get(FORMAT_KEY) != OWN_FORMAT:
        return None
    if meta.get(FORMAT_KEY) != OWN_FORMAT:
        raise UnsupportedCheckpoint(
            f"written in format {meta.get(FORMAT_KEY)!r:.40}, this version reads {OWN_FORMAT!r}"
        )
    try:
        return ModelConfig.from_json(meta[CONFIG_KEY])
    except KeyError:
        raise UnsupportedCheckpoint("our format, but the model config is missing") from None
    except (ValueError, TypeError) as exc:
        raise UnsupportedCheckpoint(f"the embedded model config is invalid: {exc}") from exc


def _infer_family(raw: RawCheckpoint, weights: CanonicalWeights, name: str) -> str | None:
    """The family the file's structure points to (``checkpoints.md`` §0), if it is decisive."""
    if raw.kind == "module":
        return "ffpp-full" if name.startswith("full_") else "ffpp"
    if weights.prefix == "model.":
        return "hongguliu" if weights.head == "last_linear.1" else "ffpp"
    if weights.prefix == "backbone.":
        return "deepfakebench"
    if weights.prefix == "xception." and weights.num_classes == 1:
        return "ispl"
    return None


def _choose_config(
    raw: RawCheckpoint,
    weights: CanonicalWeights,
    name: str,
    explicit: str | None,
    known: Expectation | None,
    listed: Expectation | None,
) -> ModelConfig:
    if weights.num_classes == 1000:
        raise NotADetector(
            "this is an ImageNet classifier (1000 classes), not a deepfake detector; "
            "use a checkpoint trained to tell real from fake faces"
        )
    stored = _stored_config(raw)
    structural = _infer_family(raw, weights, name)
    registry_family = known.family if known is not None and known.family != IMAGENET else None
    if explicit is not None:
        chosen, why = explicit, "the family given"
    elif stored is not None:
        chosen, why = stored.family, "the config stored in the file"
    elif listed is not None and listed.family is not None:
        chosen, why = listed.family, "manifest.json"
    elif structural is not None:
        chosen, why = structural, "the key layout"
        if registry_family is not None and registry_family != structural:
            _log.warning(
                "%s: the name says %s but the key layout says %s; using %s",
                name,
                registry_family,
                structural,
                structural,
            )
    elif registry_family is not None:
        chosen, why = registry_family, "the file name"
    else:
        raise UnsupportedCheckpoint(
            f"cannot tell which detector family this {weights.num_classes}-output checkpoint "
            "belongs to (its keys carry no family prefix and it has no embedded config); "
            f"pass the family explicitly (--family one of {', '.join(known_families())})"
        )
    if explicit is None and stored is not None:
        config = stored
    elif chosen == OWN_FAMILY:
        config = stored if stored is not None else ModelConfig()
    elif stored is not None and stored.family == chosen:
        config = stored
    else:
        config = FAMILY_CONFIGS[chosen]
    if config.num_classes != weights.num_classes:
        raise UnsupportedCheckpoint(
            f"family {chosen!r} ({why}) expects a {config.num_classes}-output head, but this "
            f"checkpoint has {weights.num_classes} output(s)"
            + (f"; its key layout suggests {structural!r}" if structural else "")
        )
    if explicit is not None and structural is not None and explicit != structural:
        _log.warning(
            "%s: using family %s as given (key layout suggests %s)", name, explicit, structural
        )
    return config


# --- saving -------------------------------------------------------------------------------------


def save_checkpoint(
    module: nn.Module,
    config: ModelConfig,
    path: str | Path,
    *,
    dtype: torch.dtype = torch.float32,
) -> str:
    """Write ``module``'s weights and ``config`` in the project's format; returns the sha256.

    Tensors are stored under canonical names (any supported layout is accepted and mapped),
    floating point ones in ``dtype`` (fp32, fp16 or bf16; loading casts back to fp32). The file
    is written next to its destination and renamed into place.
    """
    from safetensors.torch import save_file

    if dtype not in SAVE_DTYPES:
        raise ValueError(f"unsupported storage dtype {dtype}; use one of {SAVE_DTYPES}")
    members = list(module.members) if isinstance(module, LogitEnsemble) else [module]
    if config.members != len(members):
        raise ValueError(f"config says {config.members} network(s), the module has {len(members)}")
    tensors: dict[str, torch.Tensor] = {}
    for i, member in enumerate(members):
        weights = canonicalize_state_dict(member.state_dict())
        if weights.num_classes == 1000:
            raise NotADetector("refusing to save an ImageNet classifier as a detector")
        if weights.num_classes != config.num_classes:
            raise ValueError(
                f"config expects {config.num_classes} output(s), the module has "
                f"{weights.num_classes}"
            )
        for key, t in weights.state_dict.items():
            name = member_key(i, key) if len(members) > 1 else key
            tensors[name] = (t.to(dtype) if t.is_floating_point() else t).contiguous().clone()
    metadata = {FORMAT_KEY: OWN_FORMAT, CONFIG_KEY: config.to_json()}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        save_file(tensors, str(partial), metadata=metadata)
        # safetensors writes owner-only files; weights are shipped and read by other users
        # (the container's unprivileged user), so make them world-readable like any data file.
        os.chmod(partial, 0o644)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    digest = sha256_file(target)
    _log.info("saved %s (%s, family %s, sha256 %s)", target.name, dtype, config.family, digest[:16])
    return digest
