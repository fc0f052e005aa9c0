"""Reading the dataset for training: file formats shared with the writers, and a PyTorch loader.

Importable without the service extras (no FastAPI, Celery or Redis on the import path):
``from services.dataset.loader import SpatialVIDDataset, SpatialVIDShards``.
"""
