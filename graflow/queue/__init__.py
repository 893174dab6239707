"""Queues of activations: the in-process FIFO and (later) the Redis-backed one."""
