"""The controller core: campaign spec, selection, policy, the iteration steps, the store and the CLI."""
