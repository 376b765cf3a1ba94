"""Training jobs: detector configuration -> fitted, versioned models (run in the scheduler
process, never in an API request)."""
