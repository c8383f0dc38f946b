"""advocacy: one charity's instance: its advocates, the offers it receives, and the cases it opens."""
