"""Safe loading of Xception deepfake-detector checkpoints into one canonical module.

Supports the public FaceForensics++ tradition weights (FF++ whole-module pickles, HongguLiu,
DeepfakeBench, ISPL; ``../shared/docs/checkpoints.md``) and the project's own safetensors
format, which carries its :class:`~detector.config.ModelConfig`. No code from a weights file is
ever executed and no weights are ever made up: every failure is a typed ``CheckpointError``.

Modules: ``formats`` (containers), ``pickle_reader`` (the restricted unpickler), ``mapping``
(key-layout rules), ``registry`` (known files, manifest, hashing), ``loader`` (public API).
"""

from detector.checkpoints.formats import (
    MAX_CHECKPOINT_BYTES,
    Container,
    RawCheckpoint,
    read_checkpoint,
    sniff_container,
)
from detector.checkpoints.loader import (
    CONFIG_KEY,
    DEFAULT_WEIGHTS_NAME,
    OWN_FORMAT,
    WEIGHTS_ENV,
    LoadedCheckpoint,
    default_weights_path,
    load_checkpoint,
    load_classifier,
    resolve_weights,
    save_checkpoint,
)
from detector.checkpoints.mapping import (
    CanonicalWeights,
    build_canonical_module,
    canonical_shapes,
    canonicalize_state_dict,
    unwrap_state_dict,
)
from detector.checkpoints.registry import KNOWN_FILES, known_families, sha256_file

__all__ = [
    "CONFIG_KEY",
    "DEFAULT_WEIGHTS_NAME",
    "KNOWN_FILES",
    "MAX_CHECKPOINT_BYTES",
    "OWN_FORMAT",
    "WEIGHTS_ENV",
    "CanonicalWeights",
    "Container",
    "LoadedCheckpoint",
    "RawCheckpoint",
    "build_canonical_module",
    "canonical_shapes",
    "canonicalize_state_dict",
    "default_weights_path",
    "known_families",
    "load_checkpoint",
    "load_classifier",
    "read_checkpoint",
    "resolve_weights",
    "save_checkpoint",
    "sha256_file",
    "sniff_container",
    "unwrap_state_dict",
]
