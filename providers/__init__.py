"""Provider adapters behind one Protocol (see ``providers.base``), plus the emulators used in tests."""
