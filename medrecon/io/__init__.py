"""medrecon.io."""
