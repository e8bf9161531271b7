"""Ride ETA and driver matching: ``streamlog worker apps/eta_matching/app.py``."""
