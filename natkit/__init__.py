"""natkit: compact, task-specific convolutional networks by search and compression."""

__version__ = "0.1.0"
