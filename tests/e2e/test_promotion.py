"""Registry and promotion on the sample: champion and challenger scored on the same holdout.

One gold table (the bundled sample through ingest, validate and features) serves
every test; each test registers its models under its own name, so the tests do
not see each other's aliases.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

import mlflow
import pytest
from delta.tables import DeltaTable
from mlflow.tracking import MlflowClient

from sparkmlops.cli import main
from sparkmlops.config import Settings, load_settings
from sparkmlops.errors import MissingInputError
from sparkmlops.features.mllib import LABEL_COLUMN
from sparkmlops.features.step import features_step
from sparkmlops.ingest.step import default_batch_id, ingest_step
from sparkmlops.promote.promotion import decision_record
from sparkmlops.promote.step import promote_step
from sparkmlops.tables import dataset_tables, read_table
from sparkmlops.tracking.registry import CHALLENGER, CHAMPION, ModelRegistry
from sparkmlops.tracking.runs import configure_mlflow
from sparkmlops.train.fitting import split_train_test
from sparkmlops.train.step import reproduce_step, train_step
from sparkmlops.train.tuning import search
from sparkmlops.validate.step import validate_step

pytestmark = pytest.mark.e2e

WEAK = ["dataset.features.numeric=[body_mass_g]", "dataset.features.categorical=[species]",
        "dataset.features.date_parts=[]", "dataset.features.derived=[]"]
LOW_BAR = "dataset.promote.min_metrics={areaUnderROC: 0.65, accuracy: 0.6}"


@dataclass
class Gold:
    state_dir: str
    batch_id: str
    gold_version: int

    def settings(self, model: str, *overrides: str) -> Settings:
        return load_settings("local", "penguins", overrides=[
            f"state_dir={self.state_dir}", f"dataset.model.name={model}", *overrides])


@pytest.fixture(scope="module")
def gold(spark, tmp_path_factory, sample_landing) -> Gold:
    state_dir = str(tmp_path_factory.mktemp("promotion"))
    settings = load_settings("local", "penguins", overrides=[f"state_dir={state_dir}"])
    batch_id = default_batch_id(spark, settings)
    ingest_step(spark, settings, batch_id)
    validate_step(spark, settings, batch_id)
    written = features_step(spark, settings, batch_id)
    return Gold(state_dir, batch_id, next(iter(written.outputs.values())))


def _train(spark, gold: Gold, settings: Settings) -> str:
    return train_step(spark, settings, gold.batch_id).model_version


def _promote(spark, gold: Gold, settings: Settings, version: str | None = None):
    return promote_step(spark, settings, gold.batch_id, challenger_version=version)


def _aliases(settings: Settings) -> dict[str, str | None]:
    client = MlflowClient()
    name = settings.dataset.model.name
    return {alias: (str(v.version) if (v := ModelRegistry(client).by_alias(name, alias)) else None)
            for alias in (CHAMPION, CHALLENGER)}


def _register_shuffled_label_model(spark, gold: Gold, settings: Settings) -> str:
    """A model fitted on labels shuffled across rows; its run claims a perfect AUC."""
    dataset = settings.dataset
    data = read_table(spark, dataset_tables(settings).gold)
    train, _ = split_train_test(data, dataset)
    rows = [r.asDict() for r in train.orderBy(*dataset.keys).collect()]
    labels = [r[LABEL_COLUMN] for r in rows]
    random.Random(0).shuffle(labels)
    shuffled = spark.createDataFrame(
        [{**r, LABEL_COLUMN: label} for r, label in zip(rows, labels, strict=True)],
        train.schema)
    model = search(shuffled, dataset).model
    configure_mlflow(settings)
    with mlflow.start_run(run_name="shuffled labels"):
        mlflow.log_metrics({"areaUnderROC": 0.999, "accuracy": 0.999})  # a lie
        info = mlflow.spark.log_model(model, artifact_path="model",
                                      registered_model_name=dataset.model.name,
                                      pip_requirements=["pyspark"])
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(dataset.model.name, CHALLENGER, version)
    return version


def test_shuffled_label_model_is_never_promoted_and_a_better_one_is(spark, gold):
    weak = gold.settings("promo_order", *WEAK, LOW_BAR)
    full = gold.settings("promo_order", LOW_BAR)

    v1 = _train(spark, gold, weak)
    first = _promote(spark, gold, weak, v1)
    v2 = _register_shuffled_label_model(spark, gold, full)
    shuffled = _promote(spark, gold, full, v2)
    v3 = _train(spark, gold, full)
    better = _promote(spark, gold, full, v3)

    assert (v1, v2, v3) == ("1", "2", "3")
    assert (first.promoted, first.champion) == (True, "1")
    assert shuffled.promoted is False
    # scored on the holdout, not taken from the run that claims 0.999
    client = MlflowClient()
    shuffled_run = client.get_run(shuffled.run_id).data
    assert shuffled_run.metrics["challenger.areaUnderROC"] < 0.7
    assert shuffled_run.metrics["champion.areaUnderROC"] > shuffled_run.metrics[
        "challenger.areaUnderROC"]
    assert any("does not beat the champion's" in r for r in shuffled.decision.reasons)
    assert (better.promoted, better.decision.champion_before) == (True, "1")
    better_run = client.get_run(better.run_id).data
    assert better_run.metrics["challenger.areaUnderROC"] > better_run.metrics[
        "champion.areaUnderROC"] + 0.05
    assert _aliases(full) == {CHAMPION: "3", CHALLENGER: "3"}
    version = client.get_model_version("promo_order", "3")
    record = decision_record(version.tags)
    assert version.tags["promotion.promoted"] == "True"
    assert record["champion_before"] == "1"
    assert record["evaluated_on"].endswith(
        f"holdout rows of gold.penguins_features v{gold.gold_version}")
    assert record["challenger"]["areaUnderROC"] == pytest.approx(
        better_run.metrics["challenger.areaUnderROC"], abs=1e-6)
    assert version.description.startswith("Promotion gate (enabled) against champion v1 on ")
    assert "promoted to champion" in version.description
    assert client.get_model_version("promo_order", "2").tags["promotion.promoted"] == "False"


def test_first_model_becomes_champion_only_when_it_meets_the_minimums(spark, gold, capsys):
    """Refused by a standalone ``sparkmlops promote``: exit 5, one line, no alias moved."""
    strict_gate = "dataset.promote.min_metrics={areaUnderROC: 0.999}"
    strict = gold.settings("promo_first", strict_gate)
    usual = gold.settings("promo_first")

    v1 = _train(spark, gold, strict)
    capsys.readouterr()
    code = main(["promote", "--batch-id", gold.batch_id, "--set", f"state_dir={gold.state_dir}",
                 "--set", "dataset.model.name=promo_first", "--set", strict_gate])
    refused = capsys.readouterr()
    aliases_after_refusal = _aliases(strict)
    tags = MlflowClient().get_model_version("promo_first", v1).tags
    accepted = _promote(spark, gold, usual, v1)

    reasons = decision_record(tags)["reasons"]
    assert reasons[0].startswith("areaUnderROC=0.9")
    assert "misses the threshold 0.999" in reasons[0]
    assert reasons[-1] == "no champion yet"
    assert code == 5
    assert refused.out == ""
    assert [line for line in refused.err.splitlines() if line.startswith("sparkmlops ")] == [
        "sparkmlops promote: ModelGateFailed: model promo_first v1 failed the gate against no "
        f"champion: {'; '.join(reasons)}; @champion is none"]
    assert (tags["promotion.mode"], decision_record(tags)["passed"]) == ("enabled", False)
    assert aliases_after_refusal == {CHAMPION: None, CHALLENGER: "1"}
    assert accepted.promoted is True
    assert _aliases(usual) == {CHAMPION: "1", CHALLENGER: "1"}


def test_dry_run_decides_but_moves_no_alias(spark, gold):
    weak = gold.settings("promo_dry", *WEAK, LOW_BAR)
    dry = gold.settings("promo_dry", LOW_BAR, "dataset.promote.mode=dry_run")

    _promote(spark, gold, weak, _train(spark, gold, weak))
    v2 = _train(spark, gold, dry)
    result = _promote(spark, gold, dry, v2)

    assert (result.decision.passed, result.decision.promoted, result.decision.mode) == (
        True, False, "dry_run")
    assert result.promoted is False
    assert _aliases(dry) == {CHAMPION: "1", CHALLENGER: "2"}
    version = MlflowClient().get_model_version("promo_dry", v2)
    assert version.tags["promotion.mode"] == "dry_run"
    assert "passed the gate (dry run: not promoted)" in version.description


def test_reproduce_refits_a_tuned_run_from_its_lineage_after_the_table_moved_on(spark, gold):
    settings = gold.settings(
        "promo_reproduce", "dataset.model.tuning.method=cross_validator",
        "dataset.model.tuning.grid={regParam: [0.01, 0.3]}")
    trained = train_step(spark, settings, gold.batch_id)
    gold_ref = dataset_tables(settings).gold
    # the table moves on after training: reproduce must read the version it trained on
    DeltaTable.forPath(spark, gold_ref.path).delete("sample_number % 2 = 0")

    result = reproduce_step(spark, settings, trained.run_id)

    assert result.table_version == gold.gold_version
    assert result.estimator.params["regParam"] == trained.params["regParam"]
    assert result.original == trained.metrics
    assert result.max_abs_difference <= 1e-9
    client = MlflowClient()
    run = client.get_run(result.reproduce_run_id).data
    assert run.tags["sparkmlops.reproduces"] == trained.run_id
    assert run.tags["sparkmlops.outcome"] == "reproduced"
    assert run.metrics["difference.areaUnderROC"] == pytest.approx(0.0, abs=1e-9)
    candidates = json.loads(open(client.download_artifacts(
        trained.run_id, "training/candidates.json")).read())["candidates"]
    assert [c["params"] for c in candidates] == [{"regParam": 0.01}, {"regParam": 0.3}]
    promoted = _promote(spark, gold, settings)
    with pytest.raises(MissingInputError, match="is a promote run, not a train run"):
        reproduce_step(spark, settings, promoted.run_id)


def test_automl_train_logs_each_family_and_says_why(spark, gold):
    settings = gold.settings(
        "promo_automl", "dataset.model.automl.enabled=true",
        "dataset.model.automl.families=[logistic_regression, decision_tree_classifier]",
        "dataset.model.automl.grids={logistic_regression: {regParam: [0.01]}, "
        "decision_tree_classifier: {maxDepth: [3]}}")

    trained = train_step(spark, settings, gold.batch_id)

    client = MlflowClient()
    run = client.get_run(trained.run_id).data
    children = mlflow.search_runs(
        filter_string=f"tags.mlflow.parentRunId = '{trained.run_id}'", output_format="list")
    families = {c.data.tags["sparkmlops.automl.family"]: c.data.metrics for c in children}
    assert set(families) == {"logistic_regression", "decision_tree_classifier"}
    winner = max(families, key=lambda f: families[f]["validation.areaUnderROC"])
    assert trained.estimator == winner == run.params["estimator"]
    assert run.params["search"] == "automl"
    assert run.tags["sparkmlops.model_choice"] == trained.why
    assert trained.why is not None and trained.why.startswith(f"{winner} ")
    board = json.loads(open(client.download_artifacts(
        trained.run_id, "training/automl.json")).read())
    assert [row["family"] for row in board["leaderboard"]] == [
        "logistic_regression", "decision_tree_classifier"]
    assert 0 < run.metrics["tracking_seconds"] < run.metrics["step_seconds"]
    reference = json.loads(open(client.download_artifacts(
        trained.run_id, "monitoring/reference_profile.json")).read())
    assert sorted(reference["numeric"]) == sorted([
        "culmen_length_mm", "culmen_depth_mm", "flipper_length_mm", "body_mass_g",
        "culmen_ratio", "date_egg_year", "_score"])
    assert sorted(reference["categorical"]) == ["_predicted", "island", "species"]
    # the reference is the whole training window (every row of the gold version trained on,
    # unlabelled birds too), not the holdout; an earlier test of the module may have moved
    # gold on, so the window is what this run read
    window = (run.metrics["rows_train"] + run.metrics["rows_test"]
              + run.metrics["rows_without_label"])
    assert reference["numeric"]["_score"]["rows"] == window > run.metrics["rows_test"]
    assert run.metrics["rows_without_label"] > 0  # the sample's birds of unknown sex


def test_two_trains_without_a_promote_are_both_judged_oldest_first(spark, gold):
    weak = gold.settings("promo_backlog", *WEAK, LOW_BAR)
    full = gold.settings("promo_backlog", LOW_BAR)
    v1 = _train(spark, gold, weak)
    v2 = _train(spark, gold, full)  # moves @challenger: v1 was never judged

    result = _promote(spark, gold, full)

    assert (v1, v2) == ("1", "2")
    assert [(d.challenger_version, d.champion_before, d.promoted)
            for d in result.decisions] == [("1", None, True), ("2", "1", True)]
    assert (result.decision.challenger_version, result.decision.champion_before,
            result.champion) == ("2", "1", "2")
    assert _aliases(full) == {CHAMPION: "2", CHALLENGER: "2"}
    client = MlflowClient()
    first, second = (client.get_model_version("promo_backlog", v) for v in (v1, v2))
    first_record, second_record = decision_record(first.tags), decision_record(second.tags)
    assert (first.tags["promotion.promoted"], first_record["champion_before"]) == (
        "True", "none")
    assert first_record["reasons"][-1] == "no champion yet"
    assert (second.tags["promotion.promoted"], second_record["champion_before"]) == (
        "True", "1")
    # v2 was compared with v1's score on the same holdout, the one v1 was promoted on
    assert second_record["champion"] == first_record["challenger"]
    assert first.description.startswith("Promotion gate (enabled) against no champion on ")
    assert second.description.startswith("Promotion gate (enabled) against champion v1 on ")
    run = client.get_run(result.run_id).data
    assert run.params["judged_versions"] == "1,2"
    assert run.params["challenger_version"] == "2"
    recorded = json.loads(open(client.download_artifacts(
        result.run_id, "promotion.json")).read())
    assert [(d["version"], d["promoted"]) for d in recorded["decisions"]] == [
        ("1", True), ("2", True)]
    assert recorded["reasons"] == result.decision.reasons == recorded["decisions"][1]["reasons"]


class Killed(BaseException):
    """Stands in for SIGKILL: no handler catches it, nothing after it runs."""


def test_a_promote_killed_after_moving_champion_is_completed_by_the_re_run(
        spark, gold, monkeypatch):
    settings = gold.settings("promo_killed")
    v1 = _train(spark, gold, settings)
    move_alias, killed = ModelRegistry.set_alias, []

    def move_then_die(self, name, alias, version):
        move_alias(self, name, alias, version)
        killed.append(mlflow.active_run().info.run_id)
        raise Killed

    with monkeypatch.context() as patch:
        patch.setattr(ModelRegistry, "set_alias", move_then_die)
        with pytest.raises(Killed):
            _promote(spark, gold, settings, v1)
    client = MlflowClient()
    left = client.get_model_version("promo_killed", v1).tags
    rerun = _promote(spark, gold, settings)
    completed = client.get_model_version("promo_killed", v1)
    again = _promote(spark, gold, settings)

    [killed_run] = killed
    assert (left["promotion.champion_move"], decision_record(left)["run_id"]) == (
        "pending", killed_run)
    assert _aliases(settings) == {CHAMPION: v1, CHALLENGER: v1}
    decision = rerun.decision
    assert (decision.challenger_version, decision.promoted, decision.passed,
            decision.completes_run) == (v1, True, True, killed_run)
    assert rerun.decisions == [decision]  # completed, not judged again
    tags = completed.tags
    record = decision_record(tags)
    assert (tags["promotion.promoted"], record["champion_before"], record["run_id"],
            tags["promotion.completed_by_run"], tags["promotion.champion_move"]) == (
        "True", "none", killed_run, rerun.run_id, "done")
    assert record["reasons"] == decision.reasons
    assert decision.reasons[-1] == "no champion yet"
    assert record["challenger"]["areaUnderROC"] == pytest.approx(
        decision.challenger_metrics["areaUnderROC"], abs=1e-6)
    assert "promoted to champion" in completed.description
    # the killed run recorded its decision before the alias moved
    recorded = json.loads(open(client.download_artifacts(killed_run, "promotion.json")).read())
    assert [(d["version"], d["promoted"]) for d in recorded["decisions"]] == [(v1, True)]
    rerun_record = json.loads(open(client.download_artifacts(
        rerun.run_id, "promotion.json")).read())
    assert [(d["version"], d["completes_run"]) for d in rerun_record["decisions"]] == [
        (v1, killed_run)]
    assert client.get_run(rerun.run_id).data.tags["sparkmlops.outcome"] == "promoted"
    # a complete promotion: the next promote records nothing new on the version
    assert again.decision.reasons == ["the challenger already is the champion"]
    assert client.get_model_version("promo_killed", v1).tags == tags
