"""rvos.data."""
