"""Reliability figures: SIGKILL/resume, concurrency and the hostile-input table (results/reliability/)."""
