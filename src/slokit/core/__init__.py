"""The SLO math: pure functions on good/valid counts. No I/O, no clock, no other
slokit imports (DESIGN.md, "The one idea")."""
