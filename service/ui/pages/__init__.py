"""One router module per dashboard page."""
