"""The scores of `pipe eval`: FID-family statistics of Inception features, and per-image hint scores."""
