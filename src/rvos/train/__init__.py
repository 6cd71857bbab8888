"""rvos.train."""
