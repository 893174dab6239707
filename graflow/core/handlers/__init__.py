"""Built-in task handlers and group policies."""
