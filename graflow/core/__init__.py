"""The core: tasks, graph, workflow, context, the scheduling core and the in-process engine."""
