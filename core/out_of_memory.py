"""Out-of-memory failures (CUDA, the CPU allocator, Python) turned into messages naming the setting to lower."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from .errors import Geo4DError
from .settings import default_of

DEFAULT_DECODE_BATCH = default_of("decode_batch")
STAGES = ("load", "decode", "predict", "align")


def is_out_of_memory(error: BaseException) -> bool:
    """True for CUDA's OutOfMemoryError, Python's MemoryError and the CPU allocator's failure."""
    if isinstance(error, torch.OutOfMemoryError | MemoryError):
        return True
    return isinstance(error, RuntimeError) and "can't allocate memory" in str(error)


def out_of_memory_message(stage: str, device: torch.device, decode_batch: int = DEFAULT_DECODE_BATCH) -> str:
    """What ran out of memory and which setting lowers the memory that stage needs."""
    where = f"Out of memory on {'the GPU' if device.type == 'cuda' else 'the CPU'}"
    if stage == "load":
        return (
            f"{where} while loading the model. Use precision bf16 or fp16 (half the memory of fp32) on a GPU, "
            "close other programs using the GPU, or use device 'cpu'."
        )
    if stage == "predict":
        return (
            f"{where} while predicting windows, already one window at a time. Lower decode_batch (now "
            f"{decode_batch} frames per VAE call) or use precision bf16/fp16 on a GPU; a smaller --size "
            "lowers it most (at some loss of detail)."
        )
    if stage == "decode":
        return (
            f"{where} while decoding the video. Reconstruct a shorter frame range (--start/--end) or force a "
            "smaller network input (--size)."
        )
    if stage != "align":
        raise ValueError(f"out-of-memory stage {stage!r}; allowed {', '.join(STAGES)}.")
    return (
        f"{where} while aligning the windows. Reconstruct a shorter frame range (--start/--end) or use a larger "
        "stride (fewer windows to hold)."
    )


@contextmanager
def out_of_memory_as_error(
    stage: str, device: torch.device, decode_batch: int = DEFAULT_DECODE_BATCH
) -> Iterator[None]:
    """Turn an out-of-memory failure inside the block into a Geo4DError naming the setting to lower."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as error:
        if not is_out_of_memory(error):
            raise
        release_cached_memory(device)
        raise Geo4DError(out_of_memory_message(stage, device, decode_batch)) from error


def release_cached_memory(device: torch.device) -> None:
    """Give CUDA's cached blocks back after a failure, so that a retry starts from free memory."""
    if device.type == "cuda":
        torch.cuda.empty_cache()
