"""The deterministic cluster simulator: devnode engines behind a simulated transport."""
