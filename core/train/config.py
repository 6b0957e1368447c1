"""The training recipe of the embedded `tiny` model as one validated dataclass, with the shipped and toy presets."""

from __future__ import annotations

from dataclasses import dataclass

from ..output_folder import Layout

# Scene seeds [TRAIN_SEED_START, TRAIN_SEED_START + scenes) train the model. Seeds below
# TRAIN_SEED_START (the demo's, the quality table's 101-105, `synth`'s default 0) are never trained on.
TRAIN_SEED_START = 1000
TRAIN_SEED_LIMIT = 2000

# A training run's output folder: what it writes there. A rerun replaces these (and reuses the scenes);
# a folder holding anything else is refused before the work (core.output_folder).
WEIGHTS_NAME = "geo4d-tiny.safetensors"
LOG_NAME = "train_log.jsonl"
SUMMARY_NAME = "train_summary.json"
DATA_DIR, CACHE_NAME = "data", "scenes.npz"
TRAINING_LAYOUT = Layout(
    "Geo4D training", (f"{DATA_DIR}/", f"{DATA_DIR}/{CACHE_NAME}", LOG_NAME, SUMMARY_NAME, WEIGHTS_NAME)
)


TRAINED_NETWORKS = ("tiny", "small")  # NetworkConfig presets the recipe trains


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides the trained weights (with `seed`, the run is repeatable on one device).

    Data: `scenes` synthetic scenes (seeds TRAIN_SEED_START...) of `frames_per_scene` frames at the
    network's input size, rendered at `supersampling` x that size and box-filtered (as a resized video
    looks); windows of 16 frames start every `window_step` frames; every other window is mirrored.
    VAE: `vae_steps` AdamW steps of `vae_batch` images (RGB frames and modality maps) cropped to
    `vae_crop` pixels square (0 = whole images, the shipped choice: a crop hides each pixel's column, on
    which point-map and ray x depend), L1 + `kl_weight` KL.
    UNet: `unet_steps` steps of `unet_batch` windows, v-prediction MSE; a fraction `inference_timestep_share`
    of the timesteps is drawn from the DDIM timesteps the pipeline samples with (the network's
    sampling_steps: t = 999 alone for tiny), the rest uniform (the shipped recipe draws them all
    there). `unet_ema` > 0 keeps an exponential moving average of the UNet and context with that decay
    and ships it instead of the last step's weights (averaging out the noise of batches of 2 windows).
    `unet_temporal_weight` adds that multiple of the MSE of the frame-to-frame change of the prediction
    error (core.train.denoiser.velocity_errors): the camera's motion is a small part of the latents
    (the shipped recipe: 0; the model card has the run with 1).
    `training_rescale` multiplies the clean latents by the sampler's dynamic-rescale factor of their
    timestep, as DynamiCrafter trains (the shipped model was trained without it).
    Point-map decoder: `pointmap_steps` steps of `pointmap_batch` frames, Laplacian likelihood with the
    uncertainty head; a share `pointmap_sampled_share` of its latents are the UNet's own samples.
    `network`: the NetworkConfig preset trained ("tiny", or "small" for one GPU). `render_workers`:
    processes rendering the scenes (1 = in this process; the scenes are the same either way).
    """

    scenes: int = 320
    frames_per_scene: int = 24
    window_step: int = 8
    supersampling: int = 2
    vae_steps: int = 3000
    vae_batch: int = 8
    vae_crop: int = 0
    vae_lr: float = 1e-3
    kl_weight: float = 1e-6
    unet_steps: int = 4000
    unet_batch: int = 2
    unet_lr: float = 8e-4
    inference_timestep_share: float = 1.0
    unet_ema: float = 0.999
    unet_temporal_weight: float = 0.0
    training_rescale: bool = False
    pointmap_steps: int = 300
    pointmap_batch: int = 8
    pointmap_lr: float = 2e-4
    pointmap_sampled_share: float = 0.5
    warmup_steps: int = 20
    seed: int = 0
    log_every: int = 50
    network: str = "tiny"
    render_workers: int = 1

    def __post_init__(self) -> None:
        minimums = {
            "scenes": 1,
            "frames_per_scene": 16,
            "window_step": 1,
            "supersampling": 1,
            "vae_steps": 0,
            "vae_batch": 1,
            "vae_crop": 0,
            "unet_steps": 0,
            "unet_batch": 1,
            "pointmap_steps": 0,
            "pointmap_batch": 1,
            "warmup_steps": 0,
            "seed": 0,
            "log_every": 1,
            "render_workers": 1,
        }
        for name, low in minimums.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"TrainConfig.{name} = {value!r}; expected an integer >= {low}")
        if self.scenes > TRAIN_SEED_LIMIT - TRAIN_SEED_START:
            raise ValueError(
                f"TrainConfig.scenes = {self.scenes}; at most {TRAIN_SEED_LIMIT - TRAIN_SEED_START} "
                f"(training seeds stay in [{TRAIN_SEED_START}, {TRAIN_SEED_LIMIT}))"
            )
        if self.vae_crop % 8:
            raise ValueError(
                f"TrainConfig.vae_crop = {self.vae_crop}; expected 0 or a multiple of 8 (VAE downsampling)"
            )
        for name in ("vae_lr", "unet_lr", "pointmap_lr", "kl_weight"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"TrainConfig.{name} = {value!r}; expected a value in [0, 1]")
        if not self.unet_temporal_weight >= 0:
            raise ValueError(
                f"TrainConfig.unet_temporal_weight = {self.unet_temporal_weight!r}; expected a weight >= 0"
            )
        if not 0 <= self.unet_ema < 1:
            raise ValueError(
                f"TrainConfig.unet_ema = {self.unet_ema!r}; expected 0 (off) or a decay in (0, 1)"
            )
        if self.network not in TRAINED_NETWORKS:
            raise ValueError(f"TrainConfig.network = {self.network!r}; expected one of {TRAINED_NETWORKS}")
        for name in ("inference_timestep_share", "pointmap_sampled_share"):
            value = getattr(self, name)
            if not 0 <= value <= 1:
                raise ValueError(f"TrainConfig.{name} = {value!r}; expected a share in [0, 1]")

    @property
    def seeds(self) -> list[int]:
        """The scene seeds trained on."""
        return list(range(TRAIN_SEED_START, TRAIN_SEED_START + self.scenes))

    @classmethod
    def shipped(cls) -> TrainConfig:
        """The recipe of core/weights/geo4d-tiny.safetensors (77 minutes on a quiet 2-core CPU, 2 threads)."""
        return cls()

    @classmethod
    def toy(cls) -> TrainConfig:
        """A few steps on two short scenes: checks the whole recipe in about a minute (tests)."""
        return cls(
            scenes=2,
            frames_per_scene=16,
            supersampling=1,
            vae_steps=4,
            vae_batch=4,
            unet_steps=4,
            unet_batch=1,
            pointmap_steps=2,
            pointmap_batch=4,
            pointmap_sampled_share=1.0,
            warmup_steps=1,
            log_every=1,
        )

    @classmethod
    def small(cls) -> TrainConfig:
        """The `small` network (256x128) on one GPU, meant to finish in under 8 minutes on an H100 with its
        scenes rendered by 16 processes; not yet timed or scored on a GPU, so not the shipped model."""
        return cls(
            scenes=256,
            supersampling=2,
            vae_steps=3000,
            vae_batch=16,
            unet_steps=4000,
            unet_batch=4,
            pointmap_steps=300,
            pointmap_batch=16,
            network="small",
            render_workers=16,
        )

    @classmethod
    def preset(cls, name: str) -> TrainConfig:
        """The preset called `name` ("shipped", "small" or "toy")."""
        presets = {"shipped": cls.shipped, "small": cls.small, "toy": cls.toy}
        if name not in presets:
            raise ValueError(f"training preset {name!r}: must be one of {sorted(presets)}")
        return presets[name]()
