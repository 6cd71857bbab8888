"""rvos.losses."""
