"""The labels stage: crowd judgments to one consensus label per item."""
