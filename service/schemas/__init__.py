"""Pydantic request and response models: the API edge only."""
