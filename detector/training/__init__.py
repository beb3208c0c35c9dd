"""The training wing: manifests and face boxes of labelled data, augmentation and self-blended
fakes, sampling, the trainer, calibration, evaluation and the leave-one-method-out study.
Needs the ``[train]`` extra. Nothing in the engine or in ``bot/`` imports it (the composition
root reaches only ``detector.training.commands``, which imports argparse alone)."""
