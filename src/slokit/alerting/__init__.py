"""Alerting: multiwindow burn-rate alerts, their state, notifications, the release
gate and replay."""
