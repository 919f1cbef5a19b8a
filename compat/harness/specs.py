"""The host's view of the trainer specs (compat/trainers): prose names and adapter coverage.

Stored results may name a trainer no spec declares any more (an old table, a removed spec):
such a name reads as itself, without an adapter, instead of failing a report.
"""

from __future__ import annotations

from collections.abc import Iterable

from compat import trainers
from compat.contract import DEFAULT_TRAINER, CellResult


def _spec(name: str) -> trainers.TrainerSpec | None:
    try:
        return trainers.get(name)
    except KeyError:
        return None


def title(name: str) -> str:
    """"KTOTrainer" for "kto"."""
    spec = _spec(name)
    return spec.title if spec else name


def adapter_covers(name: str) -> bool:
    """Whether the kto-compat adapter covers this trainer (its cells carry an adapter check and findings)."""
    spec = _spec(name)
    return bool(spec and spec.adapter)


def adapter_titles() -> str:
    """The trainers the adapter covers, in prose ("KTOTrainer")."""
    return ", ".join(trainers.get(n).title for n in trainers.names() if trainers.get(n).adapter)


def report_title(results: Iterable[CellResult]) -> str:
    """What a report is about, from the specs of the trainers its cells measured (the default trainer
    when it has none): "KTOTrainer compatibility", "KTOTrainer and DPOTrainer compatibility"."""
    names = sorted({r.trainer for r in results} or {DEFAULT_TRAINER}, key=lambda n: (n != DEFAULT_TRAINER, n))
    titles = [title(n) for n in names]
    return f"{' and '.join([', '.join(titles[:-1]), titles[-1]] if len(titles) > 1 else titles)} compatibility"
