"""Features: ``silver.<dataset>`` → ``gold.<dataset>_features``, and the feature stages.

The gold table keeps what a model is fed: the business keys, the dataset's schema
columns (numbers cast to double), the raw label and ``label`` (its class index, or
the value for regression), and the batch id. Every feature is computed inside the MLlib
pipeline by :func:`feature_stages`, so scoring a raw gold or silver batch applies
exactly the training-time transformations:

    date parts (SQL) → derived (SQL) → Python transforms → buckets (Bucketizer)
    → impute numbers (Imputer) → index categories (StringIndexer, unseen and null kept)
    → one-hot (OneHotEncoder) → VectorAssembler → scale (StandardScaler | MinMaxScaler)

Example::

    pipeline = Pipeline(stages=[*feature_stages(dataset.features, scale="standard"),
                                LogisticRegression()])
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import pyspark.sql.functions as F
from pyspark.errors import AnalysisException, PySparkException
from pyspark.logger import PySparkLogger
from pyspark.ml import Transformer
from pyspark.ml.classification import (
    FMClassifier,
    LinearSVC,
    LogisticRegression,
    MultilayerPerceptronClassifier,
)
from pyspark.ml.feature import (
    Bucketizer,
    Imputer,
    MinMaxScaler,
    OneHotEncoder,
    SQLTransformer,
    StandardScaler,
    StringIndexer,
    VectorAssembler,
)
from pyspark.ml.regression import (
    AFTSurvivalRegression,
    FMRegressor,
    GeneralizedLinearRegression,
    LinearRegression,
)
from pyspark.sql import Column, DataFrame
from pyspark.sql.types import ArrayType, BooleanType, MapType, NumericType, StructType

from sparkmlops.config import (
    NUMERIC_TYPES,
    BucketFeature,
    DatasetSettings,
    DatePartsFeature,
    DerivedFeature,
    FeatureSettings,
    LabelSettings,
    TransformFeature,
)
from sparkmlops.errors import ConfigError
from sparkmlops.features.transforms import PythonFeatureTransformer, import_path, resolve_transform
from sparkmlops.spark import task_failures_unlogged
from sparkmlops.tables import BATCH_COLUMN

LABEL_COLUMN = "label"
LABEL_RAW_COLUMN = f"{LABEL_COLUMN}_raw"
FEATURES_VECTOR = "features"
# the assembled vector before scaling; it keeps the slot names that scalers drop
UNSCALED_VECTOR = f"{FEATURES_VECTOR}__unscaled"
# suffixes of the pipeline's own columns, e.g. island__index, island__onehot
IMPUTED, INDEXED, ONE_HOT, BUCKET_INPUT = "__imputed", "__index", "__onehot", "__bucket_input"

Scaling = Literal["standard", "minmax", "none"]
# models fitted by gradient steps on a weighted sum of the features, where feature
# scale matters; trees split on thresholds and do not care
SCALE_SENSITIVE = (LogisticRegression, LinearSVC, LinearRegression, GeneralizedLinearRegression,
                   AFTSurvivalRegression, FMClassifier, FMRegressor,
                   MultilayerPerceptronClassifier)


# ---------------------------------------------------------------- the gold feature table


def label_index(label: LabelSettings, raw: Column | None = None) -> Column:
    """The numeric label of ``raw`` (default: the label of the silver row, its
    ``label.source`` column or ``label.expr``): the class position for classification
    (null for a value not in ``label.classes``), the value for regression."""
    source = raw if raw is not None else raw_label(label)
    if not label.classes:
        return source.cast("double")
    mapping = F.create_map(
        *[item for i, cls in enumerate(label.classes) for item in (F.lit(cls), F.lit(float(i)))]
    )
    return mapping[source]


def raw_label(label: LabelSettings) -> Column:
    """A silver row's label before it becomes a class index: its ``label.source`` column,
    or the value of ``label.expr``, as text for classification (``classes`` are text: a
    boolean expression gives 'true' / 'false')."""
    if label.expr is None:
        return F.col(str(label.source))
    value = F.expr(label.expr)
    return value.cast("string") if label.classes else value


def check_label_expr(df: DataFrame, label: LabelSettings) -> None:
    """Analyse ``label.expr`` against ``df``'s columns (no rows are read): it must
    parse, name only columns of the rows, and give a value a label can be: a number for
    regression, a single value (not an array, map or struct) for classes.

    Raises:
        ConfigError: one line: ``label.expr``, the expression and Spark's reason.
    """
    if label.expr is None:
        return
    try:
        kind = df.limit(0).select(F.expr(label.expr).alias(LABEL_COLUMN)).schema[0].dataType
    except AnalysisException as exc:  # ParseException is one too
        reason = str(exc).strip().splitlines()[0]
        raise ConfigError(f"label.expr: {label.expr!r}: {reason}") from None
    if label.classes and isinstance(kind, ArrayType | MapType | StructType):
        raise ConfigError(f"label.expr: {label.expr!r} gives a {kind.simpleString()}; a "
                          f"label of classes {label.classes} is one value")
    if label.classes and isinstance(kind, BooleanType) and \
            set(label.classes) != {"false", "true"}:
        # else every row, or every row of a class, would be left without a label
        raise ConfigError(f"label.expr: {label.expr!r} gives a boolean, whose classes are "
                          f"false and true, not {label.classes}; set label.classes: "
                          "[false, true]")
    if not label.classes and not isinstance(kind, NumericType):
        raise ConfigError(f"label.expr: {label.expr!r} gives a {kind.simpleString()}; a "
                          "regression label is a number (or give label.classes for a "
                          "classification task)")


def model_input_columns(dataset: DatasetSettings) -> list[str]:
    """The gold columns a model reads: the keys, then the other schema columns but the label
    (and but the ``pii: drop`` ones, which no table holds)."""
    names = [*dataset.keys, *[c.name for c in dataset.stored_schema]]
    return [c for c in dict.fromkeys(names) if c != dataset.label.source]


def build_feature_table(
    df: DataFrame, dataset: DatasetSettings, accepted: DataFrame | None = None
) -> DataFrame:
    """Silver rows → the gold feature table rows (keys, inputs, label, batch id).

    With ``label.from: crowd`` the raw label is the accepted consensus label of the row's
    key in ``accepted`` (the dataset's keys and ``label``, one row per key; see
    :func:`crowd_labels`), null for a row the crowd has not settled yet: it is scored,
    never trained on, and takes its label when one is accepted later. With ``label.expr``
    it is the expression's value on the silver row (checked by :func:`check_label_expr`
    first); a row it gives null, or a value not in ``label.classes``, has a null
    ``label``: kept and scored, never trained on.

    Number columns (not keys) are cast to double, which MLlib's Imputer wants. The
    derived SQL expressions are checked against these rows' schema, the one the model
    reads, so a typo (or the label's own column, which gold holds as ``label_raw``)
    fails here with its key path rather than at training time.
    """
    types = {c.name: c.type for c in dataset.schema_}
    inputs = [F.col(c).cast("double").alias(c)
              if types[c] in NUMERIC_TYPES and c not in dataset.keys else F.col(c)
              for c in model_input_columns(dataset)]
    if dataset.label.crowd:
        if accepted is None:
            raise ValueError("label.from: crowd: the accepted labels are needed")
        df = df.join(accepted.withColumnRenamed(LABEL_COLUMN, LABEL_RAW_COLUMN),
                     on=dataset.keys, how="left")
        raw = F.col(LABEL_RAW_COLUMN)
    else:
        check_label_expr(df, dataset.label)
        raw = raw_label(dataset.label)
    gold = df.select(
        *inputs,
        raw.alias(LABEL_RAW_COLUMN),
        label_index(dataset.label, raw).alias(LABEL_COLUMN),
        BATCH_COLUMN,
    )
    check_sql_features(gold, dataset.features)
    return gold


def crowd_labels(accepted: DataFrame, dataset: DatasetSettings) -> DataFrame:
    """The gold label columns of accepted consensus labels (the dataset's keys and
    ``label``, one row per key): the keys, ``label_raw`` and its class index ``label``,
    what the labels stage MERGEs into the gold rows already written."""
    raw = F.col(LABEL_COLUMN)
    return accepted.select(*dataset.keys, raw.alias(LABEL_RAW_COLUMN),
                           label_index(dataset.label, raw).alias(LABEL_COLUMN))


def check_sql_features(df: DataFrame, features: FeatureSettings) -> None:
    """Analyse the date-part and derived SQL against ``df``'s columns (no rows are read).

    Raises:
        ConfigError: an expression does not parse or names an unknown column; the
            message has the key path and Spark's reason.
    """
    frame = df.limit(0)
    if features.date_parts:
        frame = frame.selectExpr("*", *date_part_expressions(features.date_parts))
    for i, feature in enumerate(features.derived):
        try:
            frame = frame.withColumn(feature.name, F.expr(feature.expr))
        except AnalysisException as exc:  # ParseException is one too
            reason = str(exc).strip().splitlines()[0]
            raise ConfigError(
                f"features.derived.{i} ({feature.name}): {feature.expr!r}: {reason}") from None


# ---------------------------------------------------------------- derived values, on every row


class DerivedFeatureError(ConfigError):
    """A derived feature's SQL fails on a row (ANSI SQL: a malformed cast, a division by
    zero, an index out of range); the message names the feature, its expression and
    Spark's reason at the first failing row in key order (which names a value that does
    not cast or parse).

    Exit 2, a config error: the rows passed validation, so the expression is what has
    to change (``try_cast``, ``try_divide``), or an expectation that keeps such rows out.
    """


# SQLSTATEs of a value an expression cannot take: class 22 "data exception" (a malformed
# cast 22018, division by zero 22012, overflow or an index out of range 22003, a date that
# does not parse 22007) and P0001 (assert_true / raise_error). Anything else (a lost
# executor, memory) is not the expression's fault and is raised as it is.
DATA_SQLSTATES = ("22", "P0001")


def evaluate_every_row(df: DataFrame) -> None:
    """Compute every column of every row of ``df`` and keep nothing (one Spark job).

    Spark's ``noop`` sink, not an aggregate: Spark rewrites ``count(e)`` of a non-nullable
    ``e`` to ``count(1)`` and never computes ``e``, so ``coalesce(cast(island as int), 0)``
    and ``element_at(array(1), 2)`` passed a ``count`` and fail here.
    """
    df.write.format("noop").mode("overwrite").save()


def is_data_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is Spark refusing a value (``DATA_SQLSTATES``)."""
    state = exc.getSqlState() if isinstance(exc, PySparkException) else None
    return bool(state) and str(state).startswith(DATA_SQLSTATES)


class LabelExpressionError(ConfigError):
    """``label.expr`` fails on a row (ANSI SQL: a malformed cast, a division by zero); the
    message names the expression and Spark's reason at the first failing row in key order.

    Exit 2, a config error: the rows passed validation, so the expression is what has to
    change (``try_cast``, ``try_divide``), or an expectation that keeps such rows out.
    """


@contextmanager
def label_failures_named(
    df: DataFrame, label: LabelSettings, *, keys: list[str], source: str
) -> Iterator[None]:
    """Turn a Spark job over the gold rows of ``df`` (silver rows) that fails on a value
    into the ``LabelExpressionError`` of ``label.expr``, when the expression alone fails
    on ``df``; anything else is raised as it is.

    Costs nothing when the job succeeds: the label is computed once, by the gold write;
    only after a failure is it computed alone, over the rows in ``keys`` order (so the
    value Spark names is the first failing row's, not that of whichever task failed first).
    """
    if label.expr is None:
        yield
        return
    with spark_failures_unlogged(), task_failures_unlogged(df.sparkSession):
        try:
            yield
        except PySparkException as exc:
            if not is_data_failure(exc):
                raise
            in_key_order = df.repartition(1).sortWithinPartitions(*keys)
            try:
                evaluate_every_row(in_key_order.select(raw_label(label).alias(LABEL_COLUMN)))
            except PySparkException as alone:
                if not is_data_failure(alone):
                    raise
                reason = str(alone).strip().splitlines()[0]
                raise LabelExpressionError(
                    f"label.expr: {label.expr!r} fails on {source} (first failing row by "
                    f"{', '.join(keys)}): {reason}") from exc
            raise


def derived_input(df: DataFrame, features: FeatureSettings) -> DataFrame:
    """``df`` as the derived SQL stage sees it in the pipeline: with the date parts."""
    return date_parts_stage(features.date_parts).transform(df) if features.date_parts else df


def check_derived_values(
    df: DataFrame, features: FeatureSettings, *, keys: list[str], source: str
) -> None:
    """Compute every derived feature on every row of ``df``, in one Spark job.

    ``df`` holds the rows the model will read (gold rows); ``source`` names them in the
    message, e.g. ``silver.penguins v3 batch b1``. Only after that job fails on a value are
    the features computed one by one (to find which), and the failing one once more over
    the rows in ``keys`` order (to name the first failing row's value, not a random one's).

    Raises:
        DerivedFeatureError: one line: the feature, its expression and Spark's reason
            at its first failing row.
    """
    if not features.derived:
        return
    with derived_failures_named(df, features, keys=keys, source=source):
        evaluate_every_row(derived_stage(features.derived).transform(derived_input(df, features))
                           .select(*[f.name for f in features.derived]))


@contextmanager
def derived_failures_named(
    df: DataFrame, features: FeatureSettings, *, keys: list[str], source: str
) -> Iterator[None]:
    """Turn a Spark job over ``df`` through the derived SQL that fails on a value into the
    ``DerivedFeatureError`` of the feature that fails; anything else is raised as it is."""
    with spark_failures_unlogged(), task_failures_unlogged(df.sparkSession):
        try:
            yield
        except PySparkException as exc:
            if not (features.derived and is_data_failure(exc)):
                raise
            failure = derived_failure(derived_input(df, features), features,
                                      keys=keys, source=source)
            if failure is None:  # no feature fails alone: not one we can name
                raise
            raise failure from exc


@contextmanager
def spark_failures_unlogged() -> Iterator[None]:
    """Keep PySpark from logging each SQL failure it raises as a JSON line on stderr
    (about 3,800 characters each, the JVM trace): these are expected, and named in one."""
    # through PySparkLogger: a plain logging.getLogger would create them as plain Loggers
    # first, and PySpark's own `.exception(..., errorClass=...)` on them then raises
    # TypeError inside its exception conversion (every later AnalysisException came out
    # as a raw Py4JJavaError)
    loggers = [PySparkLogger.getLogger(n) for n in ("SQLQueryContextLogger",
                                                    "DataFrameQueryContextLogger")]
    before = [logger.disabled for logger in loggers]
    for logger in loggers:
        logger.disabled = True
    try:
        yield
    finally:
        for logger, disabled in zip(loggers, before, strict=True):
            logger.disabled = disabled


def derived_failure(
    rows: DataFrame, features: FeatureSettings, *, keys: list[str], source: str
) -> DerivedFeatureError | None:
    """The first derived feature (in config order) that fails on ``rows`` alone, with
    Spark's reason at its first failing row in key order; None when each one computes."""
    last = len(features.derived) - 1
    for i, feature in enumerate(features.derived):
        # the stage up to this feature: it may use the ones before it, which passed; the
        # last one is not tried alone on the batch: all together failed, the others passed
        stage = derived_stage(features.derived[: i + 1])
        if i < last and derived_value_failure(stage, feature.name, rows) is None:
            continue
        # one partition sorted by the keys: Spark stops at the first row that fails, so the
        # value it names is that row's, not that of whichever task happened to fail first
        # (two runs over two partitions named 'Biscoe', then 'Torgersen')
        in_key_order = rows.repartition(1).sortWithinPartitions(*keys)
        exc = derived_value_failure(stage, feature.name, in_key_order)
        if exc is None:  # failed on the batch, not in key order: nothing stable to name
            return None
        reason = str(exc).strip().splitlines()[0]
        return DerivedFeatureError(
            f"features.derived.{i} ({feature.name}): {feature.expr!r} fails on {source} "
            f"(first failing row by {', '.join(keys)}): {reason}")
    return None


def derived_value_failure(
    stage: SQLTransformer, name: str, rows: DataFrame
) -> PySparkException | None:
    """Spark's refusal of a value of column ``name`` that ``stage`` adds to ``rows``, or None."""
    try:
        evaluate_every_row(stage.transform(rows).select(name))
    except PySparkException as exc:
        if is_data_failure(exc):
            return exc
        raise
    return None


# ---------------------------------------------------------------- the feature stages


def feature_stages(features: FeatureSettings, *, scale: Scaling) -> list[Any]:
    """The pipeline stages from gold rows to the ``features`` vector, in config order."""
    stages: list[Any] = []
    if features.date_parts:
        stages.append(date_parts_stage(features.date_parts))
    if features.derived:
        stages.append(derived_stage(features.derived))
    stages += [transform_stage(t) for t in features.transforms]
    if features.buckets:
        stages += bucket_stages(features.buckets)
    assembled: list[str] = []
    numeric, categorical = features.numeric_inputs, features.categorical_inputs
    if numeric:
        imputed = [f"{c}{IMPUTED}" for c in numeric]
        stages.append(Imputer(inputCols=numeric, outputCols=imputed, strategy=features.impute))
        assembled += imputed
    if categorical:
        indexed = [f"{c}{INDEXED}" for c in categorical]
        stages.append(StringIndexer(inputCols=categorical, outputCols=indexed,
                                    handleInvalid="keep", stringOrderType="alphabetAsc"))
        if features.categorical_encoding == "onehot":
            encoded = [f"{c}{ONE_HOT}" for c in categorical]
            stages.append(OneHotEncoder(inputCols=indexed, outputCols=encoded,
                                        handleInvalid="keep"))
            assembled += encoded
        else:
            assembled += indexed
    vector = FEATURES_VECTOR if scale == "none" else UNSCALED_VECTOR
    stages.append(VectorAssembler(inputCols=assembled, outputCol=vector))
    if scale == "standard":
        stages.append(StandardScaler(inputCol=vector, outputCol=FEATURES_VECTOR,
                                     withMean=True, withStd=True))
    elif scale == "minmax":
        stages.append(MinMaxScaler(inputCol=vector, outputCol=FEATURES_VECTOR))
    return stages


def resolve_scaling(features: FeatureSettings, estimator: Any) -> Scaling:
    """``features.scale``, with ``auto`` = standard for linear models, none for the rest.

    The whole assembled vector is scaled, one-hot slots too, as MLlib's own
    ``standardization`` does; the unscaled vector stays as ``features__unscaled``.
    """
    if features.scale != "auto":
        return features.scale
    return "standard" if isinstance(estimator, SCALE_SENSITIVE) else "none"


def date_part_expressions(date_parts: list[DatePartsFeature]) -> list[str]:
    return [f"CAST({part}(`{spec.column}`) AS DOUBLE) AS `{name}`"
            for spec in date_parts for part, name in zip(spec.parts, spec.outputs, strict=True)]


def date_parts_stage(date_parts: list[DatePartsFeature]) -> SQLTransformer:
    """One SQL stage adding ``<column>_<part>`` (a double) for every configured part."""
    # SQLTransformer takes only text: the columns are schema columns (identifiers, quoted),
    # the parts a closed list; no data value enters the statement
    return SQLTransformer(
        statement=f"SELECT *, {', '.join(date_part_expressions(date_parts))} FROM __THIS__")  # nosec B608


def derived_stage(derived: list[DerivedFeature]) -> SQLTransformer:
    """One SQL stage; each expression is a nested SELECT so it can use the ones before it."""
    statement = "__THIS__"
    for feature in derived:
        # the expression IS the dataset config's SQL (trusted like code; check_sql_features
        # parses it as one expression when gold is built); the name is an identifier
        statement = f"SELECT *, ({feature.expr}) AS `{feature.name}` FROM ({statement})"  # nosec B608
    return SQLTransformer(statement=statement.replace("FROM (__THIS__)", "FROM __THIS__"))


def transform_stage(transform: TransformFeature) -> PythonFeatureTransformer:
    """The Python stage of a transform: it saves a built-in transform by its registered name,
    any other function by its import path (``PythonFeatureTransformer.write``)."""
    function = resolve_transform(transform.function)
    return PythonFeatureTransformer(function=import_path(function),
                                    paramsJson=json.dumps(transform.params, sort_keys=True),
                                    outputCols=list(transform.outputs))


def bucket_stages(buckets: list[BucketFeature]) -> list[Transformer]:
    """Null → NaN (SQL), then one Bucketizer: NaN lands in its own last bucket.

    Bucketizer keeps a null input null, which VectorAssembler rejects; as NaN it
    gets bucket ``len(splits) - 1`` with ``handleInvalid="keep"``.
    """
    prepared = ", ".join(
        f"coalesce(CAST(`{b.column}` AS DOUBLE), CAST('NaN' AS DOUBLE)) AS "
        f"`{b.name}{BUCKET_INPUT}`" for b in buckets)
    return [
        # schema columns and identifier names, quoted; no data value enters the statement
        SQLTransformer(statement=f"SELECT *, {prepared} FROM __THIS__"),  # nosec B608
        Bucketizer(splitsArray=[list(b.splits) for b in buckets],
                   inputCols=[f"{b.name}{BUCKET_INPUT}" for b in buckets],
                   outputCols=[b.name for b in buckets], handleInvalid="keep"),
    ]


def has_python_stages(model: Any) -> bool:
    """Whether a (fitted) pipeline holds a Python stage, whose code must ship with it."""
    return any(isinstance(stage, PythonFeatureTransformer)
               for stage in getattr(model, "stages", []))
