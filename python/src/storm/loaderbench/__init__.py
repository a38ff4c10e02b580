"""The loader-strategy benchmark workflow: one multi-task linear classifier per loading strategy,
trained on plate files and scored on a held-out plate (macro-F1 per task, wall time)."""
