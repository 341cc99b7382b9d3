"""The security core: identities, signed bundles and sealed results (pure, no network)."""
