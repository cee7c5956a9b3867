"""The dataset's ``maintain`` section: OPTIMIZE / Z-ORDER and VACUUM of its tables
(``sparkmlops maintain``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from sparkmlops.config.base import StrictModel


class MaintainSettings(StrictModel):
    """OPTIMIZE / Z-ORDER and VACUUM of the dataset's tables."""

    zorder_by: list[str] = Field(default_factory=list)
    # Delta's safety default is 7 days; a shorter retention needs allow_unsafe_retention
    vacuum_retention_hours: float = Field(168.0, ge=0)
    allow_unsafe_retention: bool = False

    @model_validator(mode="after")
    def _retention_is_safe(self) -> MaintainSettings:
        if self.vacuum_retention_hours < 168 and not self.allow_unsafe_retention:
            raise ValueError(
                "maintain.vacuum_retention_hours: below Delta's 168 h safety default; "
                "set allow_unsafe_retention: true to allow it"
            )
        return self
