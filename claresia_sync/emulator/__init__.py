"""An emulator of the Anthropic organisation API (docs/interfaces.md section 3) and of Anthropic's
real endpoints (docs/real-api.md: Plugins API, rbac groups, Skills API) for tests, benchmarks and
the demo: `with EmulatorServer(seed) as srv: ...srv.base_url...`."""

from claresia_sync.emulator.faults import CallStats, FaultConfig, Faults
from claresia_sync.emulator.server import EmulatorServer
from claresia_sync.emulator.state import DEMO_SEED, EmulatorState, Seed, SeedError, load_seed

__all__ = [
    "DEMO_SEED",
    "CallStats",
    "EmulatorServer",
    "EmulatorState",
    "FaultConfig",
    "Faults",
    "Seed",
    "SeedError",
    "load_seed",
]
