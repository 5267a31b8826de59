"""The long-running worker: scheduler, job queue listener, ops endpoints."""
