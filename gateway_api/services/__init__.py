"""Application services: the rules between HTTP and Temporal (no FastAPI import here)."""
