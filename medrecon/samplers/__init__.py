"""medrecon.samplers."""
