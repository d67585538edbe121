"""medrecon.baselines."""
