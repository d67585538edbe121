"""medrecon.jobs."""
