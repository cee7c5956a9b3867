"""The transforms module's name before the stage folders: models saved then still load.

A ``PythonFeatureTransformer`` saved by an earlier wheel names its class
``sparkmlops.feature_transforms.PythonFeatureTransformer`` in the stage metadata and
its function ``sparkmlops.feature_transforms:normalize_text``; both resolve here to
:mod:`sparkmlops.features.transforms`. New code imports that module.
"""

from sparkmlops.features.transforms import (
    PythonFeatureTransformer,
    feature_transform,
    normalize_text,
)

__all__ = ["PythonFeatureTransformer", "feature_transform", "normalize_text"]
