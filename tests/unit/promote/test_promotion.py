from __future__ import annotations

from sparkmlops.config import PromoteSettings
from sparkmlops.promote.promotion import (
    decide,
)


def test_decide_for_an_error_metric():
    gate = PromoteSettings(min_metrics={"rmse": 2.0}, min_improvement=0.1)

    passes, reasons = decide({"rmse": 1.5}, {"rmse": 1.7}, gate, "rmse")

    assert passes is True
    assert reasons[-1] == "rmse=1.5000 beats the champion's 1.7000 by the required 0.1"
