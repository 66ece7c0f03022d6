"""What saturation and gradient share: one attention matrix per trial, statistics per query row.

Their kernel is core/rows.py, which returns each metric's replicate means; measure.py turns them into
estimates (batch means over independent replicates, exact intervals for the shares of rows), rows beside
the exact theory where a row's logits are iid normal given its query (core/exact.py) and the
random-energy model's large-n limits where they hold (core/theory.py), and gives the cost; METRICS there
names and describes every metric once. figures.py draws them against d_k and n; reading.py gives the
report's reading and the terminal table.
"""
