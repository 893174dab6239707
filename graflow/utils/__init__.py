"""Small utilities (graph drawing)."""
