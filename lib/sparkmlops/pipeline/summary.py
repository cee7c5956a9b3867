"""The short, human summary a pipeline run prints: what was written and where to look
(batch mode), what was decided (continuous mode). Read from the typed outcomes only."""

from __future__ import annotations

from typing import Any

from sparkmlops.config import Settings
from sparkmlops.config.confdir import is_uri
from sparkmlops.ingest.step import IngestOutcome
from sparkmlops.labels.step import LabelsOutcome
from sparkmlops.monitor.step import MonitorOutcome
from sparkmlops.pipeline.step import PipelineResult
from sparkmlops.predict.step import PredictOutcome
from sparkmlops.promote.step import PromoteOutcome
from sparkmlops.redact import redact_text
from sparkmlops.tables import (
    TableRef,
    crowd_tables,
    current_version,
    dataset_tables,
    model_events_table,
)
from sparkmlops.train.step import TrainOutcome
from sparkmlops.validate.step import ValidateOutcome


def pipeline_summary(spark: Any, settings: Settings, result: PipelineResult) -> str:
    """Tables and versions, run ids, model version and metrics, and where to look."""
    ds = settings.dataset
    ingest, validate = result.step(IngestOutcome), result.step(ValidateOutcome)
    train, promote = result.step(TrainOutcome), result.step(PromoteOutcome)
    predict, monitor = result.step(PredictOutcome), result.step(MonitorOutcome)
    decision = promote.decision
    assert decision is not None
    lines = [
        f"sparkmlops pipeline: dataset {ds.name}, batch {result.batch_id}, env {settings.env}",
        "",
        f"Delta tables in {settings.storage.catalog}.{settings.storage.schema_}:"
        if settings.storage.catalog_mode else
        f"Delta tables under {settings.resolve_path(settings.storage.root)}:",
    ]
    refs: list[TableRef] = list(dataset_tables(settings))
    if ds.crowd is not None:
        refs += list(crowd_tables(settings))
    refs.append(model_events_table(settings))  # the audit trail train and promote append to
    for ref in refs:
        version = current_version(spark, ref)
        lines.append(f"  {ref.fqn:<32} v{version if version is not None else '-':<4} "
                     f"{ref.address}")
    rows_in = ingest.bronze_rows if ingest.skipped else ingest.rows_in
    lines += [
        "",
        f"Rows: landing {rows_in} -> bronze {ingest.bronze_rows} "
        f"(+{ingest.quarantined} quarantined at ingest) -> silver "
        f"{validate.silver_rows} (+{validate.quarantined} quarantined by expectations"
        + (f"; {validate.kept_failing} kept failing a keep expectation"
           if validate.kept_failing else "")
        + f") -> predictions {predict.rows}",
        f"Quality gate ({validate.gate}): {validate.status}"
        + (f"; failed: {', '.join(validate.expectations_failed)}"
           if validate.expectations_failed else "")
        + (f"; anomalies: {'; '.join(validate.anomalies)}" if validate.anomalies else ""),
        *_labels_lines(result),
        "",
        f"MLflow {redact_text(settings.tracking.tracking_uri)}, experiment "
        f"{settings.tracking.experiment} (id {result.experiment_id})",
        f"  parent run {result.parent_run_id}",
    ]
    lines += [f"    {s.step:<9} {s.run_id}" for s in result.steps]
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in train.metrics.items())
    outcome = "promoted to @champion" if promote.promoted else "not promoted"
    lines += [
        "",
        f"Model {train.model} v{train.model_version} (@challenger), {outcome}; "
        f"@champion is v{promote.champion}",
        f"  holdout ({train.rows_test} rows): {metrics}",
        f"  gate: {'; '.join(decision.reasons)}",
        *[f"  also judged v{d.challenger_version} (never judged before): "
          f"{'promoted' if d.promoted else 'not promoted'}; {'; '.join(d.reasons)}"
          for d in promote.decisions if d.challenger_version != decision.challenger_version],
        f"  predictions scored by v{predict.model_version} ({predict.model_uri})",
        "",
        f"Monitoring: {monitor.status} (batch against v{monitor.model_version}'s reference)"
        + (f"; flagged: {', '.join(monitor.flagged[:8])}" if monitor.flagged else ""),
    ]
    # the summary lands in job logs: a password in the URI stays out of it
    uri = redact_text(settings.tracking.tracking_uri)
    # the batch's parent run, in the model-training view: MLflow 3.17's UI takes the view
    # from ?workflowType (or the browser's last choice), not from the experiment's kind
    # tag, and a fresh browser opens the GenAI view
    page = (f"/#/experiments/{result.experiment_id}/runs/{result.parent_run_id}"
            "?workflowType=machine_learning")
    ui = (f"open {uri.rstrip('/')}{page}" if uri.startswith(("http://", "https://")) else
          f".venv/bin/mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"
          f"   then open http://127.0.0.1:5000{page}")
    lines += ["", "Where to look:", f"  MLflow UI:  {ui}"]
    if validate.data_docs:
        # a local folder, or the artifact URI of the validate run (data_docs_dir: null)
        docs = validate.data_docs
        lines.append(f"  Data Docs:  {docs if is_uri(docs) else 'file://' + docs}")
    report = monitor.report
    lines.append(f"  Monitoring: {report if is_uri(report) else 'file://' + report}")
    lines.append("  Notebook:   notebooks/explore_pipeline_run.ipynb")
    return "\n".join(lines)


def _labels_lines(result: PipelineResult) -> list[str]:
    """The crowd labels of the run, when the dataset has a crowd and annotations landed."""
    labels = next((s for s in result.steps if isinstance(s, LabelsOutcome)), None)
    if labels is None:
        return []
    if labels.skipped:
        return [f"Crowd labels: no new judgment ({labels.judgments_in} read, "
                f"{labels.quarantined} quarantined); labels v{labels.labels_version} stand"]
    return [f"Crowd labels ({labels.method}, {labels.iterations} iterations): "
            f"{labels.judgments} judgments (+{labels.quarantined} quarantined) on "
            f"{labels.items} items -> {labels.accepted} accepted, {labels.needs_review} to "
            f"review; {labels.workers} workers, {labels.spammers} flagged spammers; "
            f"{labels.gold_updated} gold rows took a label"]


def continuous_summary(settings: Settings, result: PipelineResult) -> str:
    """The runs of a continuous batch, who scored it and the retrain decision."""
    decision = result.decision
    assert decision is not None  # continuous mode always decides
    lines = [f"sparkmlops pipeline --mode continuous: dataset {settings.dataset.name}, "
             f"batch {result.batch_id}", f"  parent run {result.parent_run_id}"]
    lines += [f"  {s.step:<9} {s.run_id}" for s in result.steps]
    lines += [f"  scored by v{decision.scored_by}; monitoring {decision.monitoring}; "
              f"live {decision.live}",
              f"  retrain: {decision.retrain} ({'; '.join(decision.reasons)})",
              f"  champion now: v{decision.champion_after}"]
    return "\n".join(lines)
