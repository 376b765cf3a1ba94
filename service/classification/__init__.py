"""Sound classification on the scored streams (issue 6): event detection on stored
predictions, `event.detected` announcements and the operating state that suppresses
anomaly alerts."""
