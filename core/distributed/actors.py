"""Ray's side of distributed reconstruction: joining a cluster, and the actor that holds the model once.

Only this module and core.distributed.driver import ray (the optional `geo4d[ray]`), and only when asked for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from types import ModuleType

import numpy as np

from ..errors import Geo4DError

RAY_REQUIREMENT = "ray==2.60.0"


def import_ray() -> ModuleType:
    """The ray package, or a Geo4DError saying how to install it."""
    try:
        import ray
    except ImportError as error:
        raise Geo4DError(
            f"--ray needs the Ray package, which this Python cannot import ({error}). Install it with "
            f"`pip install 'geo4d[ray]'` (it pins {RAY_REQUIREMENT}), or run without --ray."
        ) from error
    return ray


@contextmanager
def ray_session(address: str) -> Iterator[ModuleType]:
    """Ray connected to `address` ("auto": the running cluster; "local": a new one on this machine; else a
    cluster address such as ray://head:10001); a session this call started is shut down on exit."""
    ray = import_ray()
    started = False
    if not ray.is_initialized():
        try:
            if address == "local":
                ray.init(include_dashboard=False, configure_logging=False)
            else:
                ray.init(address=address, configure_logging=False)
        except (ConnectionError, RuntimeError, ValueError) as error:
            raise Geo4DError(
                f"--ray {address}: no Ray cluster could be joined ({error}). Start one with `ray start --head` "
                "and give its address (or 'auto' on its head node), or use --ray local."
            ) from error
        started = True
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


@dataclass(frozen=True)
class ModelFacts:
    """What the driver needs of the actors' model: its config, device, dtype, DDIM steps and window batch."""

    config: object
    device: str
    dtype: str
    steps: int
    window_batch: int


class WindowWorker:
    """The model, loaded once, predicting batches of windows; each Ray actor holds one."""

    def __init__(self, model: str, settings) -> None:
        self.model_name = model
        self.settings = settings
        self.predictor = None

    def load(self) -> ModelFacts:
        """Load the model (the settings checked against it) and say what it is."""
        from ..network.loading import load_model
        from ..network.window_predictor import WindowPredictor

        model = load_model(self.model_name, self.settings.device, self.settings.precision)
        self.settings.check_model(model)
        self.predictor = WindowPredictor(model, self.settings)
        return ModelFacts(
            model.config,
            str(model.device),
            str(model.dtype).removeprefix("torch."),
            self.predictor.steps,
            self.predictor.initial_batch(),
        )

    def predict(self, frames: np.ndarray, fps: float, plan, windows: list[int]) -> tuple[list, int]:
        """The predictions (on the CPU) of `windows` of `plan` over `frames`, and the batch that fitted."""
        from ..out_of_memory import out_of_memory_as_error
        from ..prediction import WindowPrediction
        from ..progress import Reporter

        plan = replace(plan, frame_indices=plan.frame_indices.copy())  # Ray hands arrays over read-only
        with out_of_memory_as_error("predict", self.predictor.device, self.settings.decode_batch):
            predictions, batch = self.predictor.predict(frames, fps, plan, Reporter(), windows)
        cpu = [WindowPrediction(**{k: v.cpu() for k, v in vars(p).items()}) for p in predictions]
        return cpu, batch
