"""The dataset's ``promote`` section: the gate between @challenger and @champion."""

from __future__ import annotations

from pydantic import Field

from sparkmlops.config.base import GateMode, StrictModel


class PromoteSettings(StrictModel):
    mode: GateMode = "enabled"
    # metric → floor (a ceiling for error metrics, see sparkmlops.metrics)
    min_metrics: dict[str, float] = Field(default_factory=dict)
    # how much the challenger's primary metric must beat the champion's by; the gate
    # always wants a strict win, so a negative margin (a worse model passing) is refused
    min_improvement: float = Field(0.0, ge=0.0)
