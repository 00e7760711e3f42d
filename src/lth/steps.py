"""Points in training, written as the CLI writes them: ``500it`` (iterations) or ``2ep`` (epochs)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from lth.errors import UserError

_STEP = re.compile(r"^(\d+)(it|ep)$")


@dataclass(frozen=True, order=True)
class Step:
    """A point in training written ``500it`` (iterations) or ``2ep`` (epochs)."""

    count: int
    unit: str  # "it" or "ep"

    @classmethod
    def parse(cls, text: str | Step) -> Step:
        """Parse ``500it`` / ``2ep``; raise UserError naming the bad value otherwise."""
        if isinstance(text, Step):
            return text
        m = _STEP.match(str(text).strip())
        if not m:
            raise UserError(f"bad step {text!r}: write a whole number followed by 'it' or 'ep', e.g. 500it or 2ep")
        return cls(int(m.group(1)), m.group(2))

    def iterations(self, steps_per_epoch: int) -> int:
        """This step as an iteration count."""
        return self.count if self.unit == "it" else self.count * steps_per_epoch

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"
