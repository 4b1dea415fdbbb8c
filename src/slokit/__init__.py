"""slokit."""
