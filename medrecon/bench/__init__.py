"""medrecon.bench."""
