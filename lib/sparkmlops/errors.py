"""Named errors; each carries the exit code its job ends with.

Exit codes: 0 done, 1 unexpected error, 2 bad config or usage, 3 missing input,
4 failed quality gate, 5 failed model gate, 6 a reproduced run's metrics differ,
7 the data cannot train a model (a class missing, a constant label, a holdout too
small, an all-null or non-finite feature).
"""

from __future__ import annotations


class SparkmlopsError(Exception):
    """Base class: an expected failure that ends a job with one clear line."""

    exit_code = 1


class ConfigError(SparkmlopsError):
    """The configuration is invalid; the message names the key path."""

    exit_code = 2


class InvalidBatchIdError(ConfigError):
    """A batch id outside the safe charset (it would reach a Delta predicate and paths)."""


class MissingInputError(SparkmlopsError):
    """An input path, table, version or model the step needs does not exist."""

    exit_code = 3


class VersionUnavailableError(MissingInputError):
    """A Delta table version time travel cannot read: never written, gone from the log
    (``delta.logRetentionDuration``), or its data files deleted by VACUUM."""


class RollbackRefused(ConfigError):
    """``rollback`` was asked for what it does not do (no reason, the champion itself, a later
    version); the message says why, and nothing moved."""


class QualityGateFailed(SparkmlopsError):
    """A critical expectation failed while the quality gate is enabled."""

    exit_code = 4


class RepeatedKeysError(QualityGateFailed):
    """Append mode with ``write.repeated_keys: fail``: the batch brings keys silver already
    holds, or repeats a key within itself.

    A quality gate of its own (exit 4): like a failed critical expectation it stops
    validate before silver or quarantine is written, so whatever handles a failed
    gate handles it too; the name says which setting decided.
    """


class ModelGateFailed(SparkmlopsError):
    """The challenger did not pass the promotion gate (or no champion exists to score with)."""

    exit_code = 5


class TrainingDataError(SparkmlopsError):
    """The data cannot train a model; the message names the table version, counts and columns."""

    exit_code = 7


class ReconciliationError(SparkmlopsError):
    """Rows in != rows out across a step's tables: something was lost or doubled."""


class ReproductionMismatch(SparkmlopsError):
    """A run retrained from its recorded lineage gave different metrics."""

    exit_code = 6


class FeatureTransformError(SparkmlopsError):
    """A Python feature transform cannot be imported or did not add its declared columns."""


def check_reconciled(
    what: str, rows_in: int, *, error: type[ReconciliationError] = ReconciliationError,
    **rows_out: int,
) -> None:
    """Raise ``error`` unless ``rows_in`` equals the sum of ``rows_out``.

    Every step that moves rows checks this before it reports: nothing lost, nothing
    doubled. ``what`` names the step and batch, e.g. ``"validate batch b1: 10 bronze rows"``;
    ``error`` is the step's own subclass of ReconciliationError where it has one.

    Example::

        check_reconciled(f"predict batch {batch_id}: {rows} gold rows", rows,
                         predictions=written.rows, quarantined=quarantined)
    """
    if rows_in != sum(rows_out.values()):
        parts = ", ".join(f"{count} {name.replace('_', ' ')}" for name, count in rows_out.items())
        raise error(f"{what} but {parts}")

