"""Read models of the dunning platform: SQL tables, their migrations, the projector and queries."""
