"""Shared fixtures live in tests/fixtures/ as pytest plugins, one module per real dependency."""

pytest_plugins = [
    "tests.fixtures.db",
    "tests.fixtures.emulator",
    "tests.fixtures.daemon",
    "tests.fixtures.center",
]
