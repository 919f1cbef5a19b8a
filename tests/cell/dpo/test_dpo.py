"""In-cell DPO measurements: the checks every trainer gets (compat/trainers/dpo.py
says where DPOTrainer lives, its row shape and its tiny run). The host runs
this module alone for a DPO cell (`pytest tests/cell/dpo`)."""

from __future__ import annotations

from common import (  # noqa: F401 - collected here
    test_deprecation_emitter,
    test_import,
    test_keyword_probe,
    test_platform,
    test_training,
)

STAGE = "construct"
