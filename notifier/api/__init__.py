"""The HTTP API (FastAPI): health, metrics, alerts, acknowledgments, event ingest."""
