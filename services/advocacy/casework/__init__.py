"""Casework: a charity's offers and cases, from an offer received to a case open or closed.

`cases` holds the use cases (record, accept, decline, expire an offer; open, close a case; report
capacity); `timeline` the one way any of them notes who did what; `intake_client` the one fetch of a full
referral from intake.
"""
