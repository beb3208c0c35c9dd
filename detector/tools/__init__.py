"""Tools that measure the engine: ``bench`` (latency, throughput, memory, precision variants)
and ``bench-faces`` (the face finders on a generated check set). Nothing in the engine or in
``bot/`` imports them; they may read labelled data through ``detector.training``."""
