"""Compatibility import path only: models saved before the stage folders still load.

Do not import this module from new code; import :mod:`sparkmlops.features.transforms`.
Do not delete it either. A ``PythonFeatureTransformer`` saved by an earlier wheel
stores its class as ``sparkmlops.feature_transforms.PythonFeatureTransformer`` in the
stage metadata. Spark's ``DefaultParamsWriter`` writes that class path, and it cannot
be a registered name. The same model stores its function as
``sparkmlops.feature_transforms:normalize_text``. Both resolve here, to the current
class and function.

These paths are entries of
:data:`sparkmlops.features.transforms.COMPAT_IMPORT_PATHS`, the one list of the
import paths that saved models need. tests/integration/test_saved_models.py freezes
that list and loads a model saved under these paths
(tests/fixtures/models/penguins-lr-normalize-text-old-import-paths).
"""

from sparkmlops.features.transforms import (
    PythonFeatureTransformer,
    feature_transform,
    normalize_text,
)

__all__ = ["PythonFeatureTransformer", "feature_transform", "normalize_text"]
