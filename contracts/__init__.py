"""Contracts between the services: the event catalogue (events.py)."""
