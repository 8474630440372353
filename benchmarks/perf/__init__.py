"""Throughput of natkit's own loops against plain PyTorch, and the first-run (cold) costs users pay."""
