"""Scoring: the worker that scores every ingested window with the machine's active
detector, score rollups for long timelines, and retention."""
