"""Wire-faithful emulators of the providers' HTTP APIs: test doubles that say so in every response."""

from providers.emulator.app import create_emulator_app
from providers.emulator.faults import EMULATOR_HEADER, EmulatorConfig, EndpointPlan

__all__ = ["EMULATOR_HEADER", "EmulatorConfig", "EndpointPlan", "create_emulator_app"]
