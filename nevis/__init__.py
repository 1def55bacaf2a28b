"""nevis: a benchmark harness for never-ending visual learning and equilibrium models."""
