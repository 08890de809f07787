"""`pipe eval`: colour a split under fixed hint settings, score it, and write a report."""
