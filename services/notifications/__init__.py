"""Notifications: turns referral events into signed, retried, logged webhooks for the referring agency."""
