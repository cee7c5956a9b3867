"""Lineage: one prediction row walked back to its model, training data, validation, landing
files and code (``sparkmlops lineage``)."""
