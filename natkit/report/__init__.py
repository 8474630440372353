"""Pareto plots, hypervolume curves and summaries, all read from an archive."""
