"""Celery tasks and the per-process model cache.

Nothing here imports TensorFlow at module level: the Celery parent process and
the web process import this package, and TensorFlow must only ever load inside
a worker child, lazily, on its first task.
"""
