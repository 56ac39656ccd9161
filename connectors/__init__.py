"""Sources: the publisher integrators use, and the file and bank-feed connectors."""
