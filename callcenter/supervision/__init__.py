"""Supervisors on agents' calls (:mod:`callcenter.supervision.monitor`)."""
