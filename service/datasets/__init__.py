"""Uploaded datasets (.npz) for calibration, evaluation and training."""
