"""pbx/asterisk."""
