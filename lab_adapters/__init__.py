"""The protocol every executor speaks, and the executors themselves."""
