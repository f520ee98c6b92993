"""One module per group of DOMAIN.md rules; one function per rule, taking the validation context and returning
what it found. The catalogue (``activities.validation.catalogue``) lists them in the order they run."""
