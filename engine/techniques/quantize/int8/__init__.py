"""What every int8 technique shares: calibration data, default rules, smoothing."""
