"""The detector as a Ray Serve application speaking the Open Inference Protocol V2 REST API
(``docs/remote-detector.md``): ``deepfake-bot serve``, or ``serve run detector.serving.app:build``
and KubeRay (``docs/deploy-ray.md``). Needs the ``[serve]`` extra.

Only ``scorer``, ``ingress``, ``app`` and ``server`` import Ray; ``commands``, ``options`` and
``protocol`` stay light, so ``deepfake-bot --help`` never loads it (``tests/test_layering.py``).
"""
