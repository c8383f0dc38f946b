"""Continuity of care: a case's NRM record and the deadlines it starts, transitions, provider handover.

Read in this order: `policy` (NRM durations as versioned data), `deadlines` (which clocks a referral, a
decision or a birthday starts: pure), `wall_clock` (time as a collaborator), `transitions`, `nrm`,
`handover`, and `scheduler`, which fires the clocks and flags missed transitions.
"""
