"""A scripted provider for tests: queue results and errors, read back the jobs it was given."""

from __future__ import annotations

from collections import deque

from policies.capabilities import Capabilities
from providers.base import EditJob, ProviderResult, ResultImage
from providers.errors import ProviderError


class ScriptedProvider:
    def __init__(self, name: str, capabilities: Capabilities | None = None) -> None:
        self.name = name
        self.capabilities = capabilities or Capabilities(native_mask=True, max_refs=4)
        self.script: deque[ProviderResult | ProviderError] = deque()
        self.jobs: list[EditJob] = []

    def then(self, *steps: ProviderResult | ProviderError) -> ScriptedProvider:
        self.script.extend(steps)
        return self

    async def edit(self, job: EditJob) -> ProviderResult:
        self.jobs.append(job)
        step = self.script.popleft()
        if isinstance(step, ProviderError):
            raise step
        return step


def image_result(data: bytes, mime: str = "image/png", **usage: int) -> ProviderResult:
    return ProviderResult(images=[ResultImage(data=data, mime=mime)], usage=usage or {"images": 1})
