"""The remote detector backend: the network on an Open Inference Protocol V2 (KServe V2 REST)
server, the rest of the pipeline here. The wire contract is ``docs/remote-detector.md``."""

from detector.remote.classifier import RemoteClassifier
from detector.remote.client import RemoteOptions, V2Client

__all__ = ["RemoteClassifier", "RemoteOptions", "V2Client"]
