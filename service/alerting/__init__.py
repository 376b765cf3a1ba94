"""Alert rules, the alert lifecycle and webhook events."""
