"""A version's model card is read through one function; a version without one says so."""

from __future__ import annotations

import pytest
from mlflow.entities.model_registry import ModelVersion, ModelVersionTag

from sparkmlops.errors import MissingInputError
from sparkmlops.tracking.registry import TAG_TRAINING_TABLE_VERSION, ModelRegistry


def test_a_version_registered_without_a_card_is_named_in_one_line():
    version = ModelVersion("penguins_sex", "3", 0, tags=[ModelVersionTag("other", "x")])

    with pytest.raises(MissingInputError) as error:
        ModelRegistry(client=None).model_card(version)  # type: ignore[arg-type]

    assert str(error.value) == (
        "model penguins_sex version 3 has no sparkmlops.model_card tag: it was not "
        "registered by train, or before versions had a model card")


@pytest.mark.parametrize(("tags", "trained_on"), [
    ([ModelVersionTag(TAG_TRAINING_TABLE_VERSION, "4")], 4),
    ([ModelVersionTag("training_table_version", "4")], None),  # the tag before model cards
    ([], None),
])
def test_the_training_table_version_is_the_one_namespaced_tag(tags, trained_on):
    assert ModelRegistry.trained_on(ModelVersion("m", "1", 0, tags=tags)) == trained_on
