"""medrecon.metrics."""
