"""The functional core: pure credit policy, no I/O, no wall clock."""
