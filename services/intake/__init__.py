"""intake: where a referral enters. Validates it, applies the pathway rules, stores it and offers it."""
