"""Deepfake detection engine: image bytes in, faces with P(fake) out.

Usable without any chat platform; the bots in ``bot/`` talk to it through
:class:`detector.service.DetectorService`.
"""
