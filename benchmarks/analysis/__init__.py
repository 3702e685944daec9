"""Analytic latency models beside the measurements: roofline (MobileNetV4 paper) and a per-block latency
lookup table (MoGA paper)."""
