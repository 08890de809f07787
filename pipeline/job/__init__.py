"""`pipe run`: a job file (pipeline.job.spec), its plan (plan) and its run (run)."""
