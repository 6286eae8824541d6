"""pbx/freeswitch."""
