"""Spam detection on pin events: burst, duplicate text, domain ring and report signals.

Run it with ``streamlog worker apps/spam_detection/app.py``; feed it with
``python -m apps.spam_detection.generate``. See docs/apps-spam.md.
"""
