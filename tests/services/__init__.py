"""Real services the test tiers start on loopback (S3 API, Slurm + slurmrestd)."""
