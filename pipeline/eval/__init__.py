"""`pipe eval`: colour a split under fixed hint settings from one or more line sources, score it (repeated
hint draws give spreads), and write a report."""
