"""Structural removal through Torch-Pruning, and importance criteria."""
