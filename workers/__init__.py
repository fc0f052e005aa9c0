"""Celery adapters of the stages: the distributed mode's workers (one queue per stage)."""
