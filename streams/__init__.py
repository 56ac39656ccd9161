"""Stream processing: the functional core (``streams.core``) and the Faust app around it."""
