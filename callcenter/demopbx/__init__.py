"""demopbx."""
