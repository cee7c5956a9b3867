"""The dataset's ``promotion`` section: the gate between @challenger and @champion."""

from __future__ import annotations

from pydantic import Field

from sparkmlops.config.base import GateMode, StrictModel


class PromotionSettings(StrictModel):
    mode: GateMode = "enabled"
    # metric → floor (a ceiling for error metrics, see sparkmlops.metrics)
    min_metrics: dict[str, float] = Field(default_factory=dict)
    min_improvement: float = 0.0
