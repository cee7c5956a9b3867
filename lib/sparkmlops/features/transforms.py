"""Python feature transforms: ``DataFrame -> DataFrame`` functions as saved pipeline stages.

For what Spark SQL cannot say nicely. A transform is a function that takes a DataFrame
and keyword parameters and returns it with columns added. Config names it by the name
it is registered under (``@feature_transform("name")``) or by its import path
``package.module:function``. The :class:`PythonFeatureTransformer` stage stores a
reference to the function and the parameters as JSON, not the code. The stage is saved
and loaded with the ``PipelineModel`` (``DefaultParamsWritable``), so the driver that
loads a model must be able to resolve the reference (a model logged by the train step
carries sparkmlops' own code); the executors need not, since the UDFs a transform
builds are pickled by value.

The saved reference (:func:`saved_reference`) of a built-in (registered in this
module, so known wherever the stage's class loads) is its registered name, which
outlives a move of the function's module. Any other function is saved by its import
path: its registered name is known only once its module is imported, and loading the
import path does that import (and registers any names in it). The class path,
which Spark stores for every stage, and the function paths that older models stored
are listed in :data:`COMPAT_IMPORT_PATHS` and must keep importing.

Example::

    @feature_transform("island_initial")
    def island_initial(df: DataFrame, *, column: str, output: str) -> DataFrame:
        return df.withColumn(output, F.substring(column, 1, 1))

    # conf/datasets/<name>.yml
    # features:
    #   transforms:
    #     - function: island_initial            # or mypackage.features:island_initial
    #       params: {column: island, output: island_initial}
    #       outputs: [island_initial]
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import json
import sys
import unicodedata
from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import pyspark.sql.functions as F
from pyspark import cloudpickle, keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLWriter,
)
from pyspark.sql import DataFrame

# Only pyspark, pandas and sparkmlops.errors: a saved model loads this module (and the
# stage) where the rest of sparkmlops' dependencies may not be installed.
from sparkmlops.errors import FeatureTransformError

TransformFunction = Callable[..., DataFrame]
_F = TypeVar("_F", bound=TransformFunction)
_REGISTRY: dict[str, TransformFunction] = {}

# The import paths that saved models name; each must keep importing (and resolving to
# the current class or function) for as long as such models may be loaded. Spark's
# DefaultParamsWriter stores every stage's class path, so a class path cannot be a
# registered name. Models saved up to 026694e store the function's import path. Models
# saved before the stage folders store both under sparkmlops.feature_transforms, now a
# module that only re-exports. tests/integration/test_saved_models.py loads models of
# each kind and freezes this list. When this module moves, keep an alias module for
# each path.
COMPAT_IMPORT_PATHS: tuple[str, ...] = (
    "sparkmlops.features.transforms.PythonFeatureTransformer",
    "sparkmlops.features.transforms:normalize_text",
    "sparkmlops.feature_transforms.PythonFeatureTransformer",
    "sparkmlops.feature_transforms:normalize_text",
)


def feature_transform(name: str) -> Callable[[_F], _F]:
    """Register a ``DataFrame -> DataFrame`` function under ``name`` for ``features.transforms``.

    The function must be importable by its module and name (defined at module level),
    since the saved model refers to it by import path.
    """

    def register(function: _F) -> _F:
        known = _REGISTRY.get(name)
        if known is not None and import_path(known) != import_path(function):
            raise ValueError(f"feature transform {name!r} is already registered as "
                             f"{import_path(known)}")
        _REGISTRY[name] = function
        return function

    return register


def import_path(function: TransformFunction) -> str:
    """``package.module:function``, where the function is defined."""
    return f"{function.__module__}:{function.__qualname__}"


def saved_reference(reference: str) -> str:
    """What a saved stage stores for ``reference``, a registered name or an import path.

    A built-in transform is stored by its registered name: it resolves wherever the
    stage's class loads, and it still resolves after the function's module moves, so
    no new compatibility path is needed. Any other function keeps its import path,
    because its registered name is known only where its module has been imported. A
    reference given as a registered name becomes that function's import path. A
    reference that does not resolve is stored as given: it then fails at load, with
    the same message a transform would give.
    """
    try:
        function = resolve_transform(reference)
    except FeatureTransformError:
        return reference
    name = next((n for n, f in _BUILTINS.items() if f is function), None)
    if name is not None:
        return name
    return import_path(function) if ":" not in reference else reference


def resolve_transform(reference: str) -> TransformFunction:
    """The function of a registered name or of an import path ``package.module:function``.

    Raises:
        FeatureTransformError: no such registered name, module or function.
    """
    if ":" not in reference:
        function = _REGISTRY.get(reference)
        if function is None:
            close = difflib.get_close_matches(reference, list(_REGISTRY), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise FeatureTransformError(
                f"unknown feature transform {reference!r}; {hint}registered: "
                f"{sorted(_REGISTRY)}, or give an import path 'package.module:function'")
        return function
    module_name, _, attribute = reference.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise FeatureTransformError(
            f"feature transform {reference!r}: cannot import module {module_name!r} ({exc})"
        ) from None
    for part in attribute.split("."):
        found = getattr(found, part, None)
    if not callable(found):
        raise FeatureTransformError(
            f"feature transform {reference!r}: module {module_name!r} has no function "
            f"{attribute!r}")
    return found


def check_transform_params(function: TransformFunction, params: dict[str, Any]) -> None:
    """Raise ``TypeError`` when ``function(df, **params)`` would not bind (unknown or missing)."""
    signature = inspect.signature(function)
    takes = list(signature.parameters.values())[1:]
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in takes):
        unknown = [k for k in params if k not in {p.name for p in takes}]
        if unknown:
            raise TypeError(f"unknown parameter(s) {unknown}; it takes {[p.name for p in takes]}")
    signature.bind(None, **params)


class PythonFeatureTransformer(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    """A pipeline stage that applies a Python feature transform and keeps its declared outputs.

    Saved as its params (the function's :func:`saved_reference`, the JSON parameters,
    the output columns), so a ``PipelineModel`` holding it persists with Spark's Python
    pipeline writer and loads with ``PipelineModel.load`` and ``mlflow.spark.load_model``.
    ``function`` may be a registered name, an import path, or an import path listed in
    :data:`COMPAT_IMPORT_PATHS`.

    Example::

        stage = PythonFeatureTransformer(
            function="normalize_text",
            paramsJson='{"column": "island", "output": "island_norm"}',
            outputCols=["island_norm"])
    """

    function: Param[str] = Param(
        Params._dummy(), "function",
        "the transform: a registered name or an import path package.module:function",
        typeConverter=TypeConverters.toString)
    paramsJson: Param[str] = Param(
        Params._dummy(), "paramsJson", "keyword arguments of the function, a JSON object",
        typeConverter=TypeConverters.toString)
    outputCols: Param[list[str]] = Param(
        Params._dummy(), "outputCols", "the columns the function adds",
        typeConverter=TypeConverters.toListString)
    _input_kwargs: dict[str, Any]  # set by @keyword_only

    @keyword_only
    def __init__(self, *, function: str | None = None, paramsJson: str = "{}",
                 outputCols: list[str] | None = None) -> None:
        super().__init__()
        self._setDefault(paramsJson="{}", outputCols=[])
        self._set(**self._input_kwargs)

    def write(self) -> MLWriter:
        """Spark's params writer, with ``function`` saved as its :func:`saved_reference`.

        Applied here, at save time, so every path to a saved stage is covered: a stage
        built from config (whose import path the feature stages pass), one built by hand,
        and an older model that is loaded and then saved again.
        """
        reference = self.getOrDefault(self.function)
        return DefaultParamsWriter(self.copy({self.function: saved_reference(reference)}))

    def _transform(self, dataset: DataFrame) -> DataFrame:
        reference = self.getOrDefault(self.function)
        outputs = self.getOrDefault(self.outputCols)
        params = json.loads(self.getOrDefault(self.paramsJson))
        function = resolve_transform(reference)
        _pickle_udfs_by_value(function)
        result = function(dataset, **params)
        missing = [c for c in outputs if c not in result.columns]
        if missing:
            raise FeatureTransformError(
                f"feature transform {reference} did not add its declared output(s) {missing}; "
                f"it returned columns {result.columns}")
        # only the declared outputs: helper columns of the function do not leak into the model
        kept = [c for c in dataset.columns if c not in outputs]
        return result.select(*kept, *outputs)


def _pickle_udfs_by_value(function: TransformFunction) -> None:
    # A UDF's helpers are pickled by reference (module + name) by default, so each
    # Python worker imports the function's module: where it is missing or another
    # version, the UDF fails or computes something else. MLflow's code_paths only
    # reach the driver's sys.path. By value, the workers run this very code.
    module = sys.modules.get(function.__module__)
    if module is None or module.__name__ == "__main__":
        return
    if module.__name__ not in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.register_pickle_by_value(module)


# ---------------------------------------------------------------- built-in transforms


@feature_transform("normalize_text")
def normalize_text(df: DataFrame, *, column: str, output: str, strip_accents: bool = True,
                   casefold: bool = True) -> DataFrame:
    """Add ``output``: ``column`` Unicode-normalized (NFKC), accents stripped, case-folded,
    whitespace collapsed; null, empty and blank text become null.

    For hand-typed categories ("Torgersen", " TORGERSEN", "Tórgersen", "Torgersen\\u00a0")
    so that one category is not split in several and a spelling variant at scoring time
    is not an unseen label. Spark SQL has no Unicode normalization, so this is a pandas
    UDF (vectorized, one Arrow batch at a time).

    Example::

        df.transform(normalize_text, column="island", output="island_norm")
    """

    @F.pandas_udf("string")  # type: ignore[call-overload]  # pandas has no stubs here
    def normalize(values: pd.Series) -> pd.Series:
        # an Arrow batch of nulls only maps to float NaN, which Arrow cannot write as string
        return values.map(lambda v: _normalize(v, strip_accents, casefold),
                          na_action="ignore").astype("string")

    return df.withColumn(output, normalize(F.col(column)))


def _normalize(text: str, strip_accents: bool, casefold: bool) -> str | None:
    if strip_accents:
        # NFKD splits "ó" into "o" + a combining accent, which is then dropped
        decomposed = unicodedata.normalize("NFKD", text)
        text = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    text = unicodedata.normalize("NFKC", text)
    if casefold:
        text = text.casefold()
    return " ".join(text.split()) or None


# the transforms registered by this module, so known wherever the stage's class loads:
# a saved stage names these by their registered name (see saved_reference)
_BUILTINS: dict[str, TransformFunction] = dict(_REGISTRY)
