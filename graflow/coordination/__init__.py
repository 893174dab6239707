"""Where parallel-group branches run: threads, the calling thread, or the worker pool."""
