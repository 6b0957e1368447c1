"""Hyperparameters of every Geo4D network component, validated on construction, with `full` and `tiny` presets."""

from __future__ import annotations

from dataclasses import dataclass, field

# Landscape network sizes (W, H) of Geo4D. Portrait videos use the same sizes transposed (H, W):
# the network is convolutional, so a 320x512 input is as valid as 512x320 and needs no cropping of
# the long side.
MODEL_SIZES = ((512, 320), (512, 384), (576, 256), (640, 192))
GROUP_NORM_GROUPS = 32  # GroupNorm groups of the UNet and its temporal blocks, and of the published VAE
# The tiny model's one input size (W, H): wider or narrower videos are centre-cropped to 2:1.
TINY_INPUT_SIZES = ((128, 64),)
SMALL_INPUT_SIZES = ((256, 128),)  # the `small` preset's, also 2:1


def _check_positive(owner: str, **values: int | float) -> None:
    for name, value in values.items():
        if value <= 0:
            raise ValueError(f"{owner}.{name} = {value!r}: must be > 0")


def _check_group_divisible(owner: str, groups: int = GROUP_NORM_GROUPS, **widths: int) -> None:
    for name, width in widths.items():
        if width % groups:
            raise ValueError(f"{owner}.{name} = {width}: must be a multiple of {groups} (GroupNorm groups)")


@dataclass(frozen=True)
class UNetConfig:
    """The DynamiCrafter 3-D UNet as Geo4D configures it (`model.diffusion_model`).

    Attention sits at the downsampling factors in `attention_resolutions` (1 = full latent size) and in
    the middle block. Heads per block = width // `head_channels`. `init_attn` (after the first conv) has
    `init_attn_heads` heads of `head_channels`. The cross-attention context is `text_tokens` text tokens
    followed by `image_tokens_per_frame` image tokens per frame.
    """

    in_channels: int = 20
    out_channels: int = 16
    model_channels: int = 320
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (4, 2, 1)
    head_channels: int = 64
    transformer_depth: int = 1
    context_dim: int = 1024
    temporal_length: int = 16
    init_attn_heads: int = 8
    text_tokens: int = 77
    image_tokens_per_frame: int = 16
    image_attention_scale: float = 1.0
    default_fps: int = 24

    def __post_init__(self) -> None:
        _check_positive(
            "UNetConfig",
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            num_res_blocks=self.num_res_blocks,
            head_channels=self.head_channels,
            transformer_depth=self.transformer_depth,
            context_dim=self.context_dim,
            temporal_length=self.temporal_length,
            init_attn_heads=self.init_attn_heads,
            text_tokens=self.text_tokens,
            image_tokens_per_frame=self.image_tokens_per_frame,
            default_fps=self.default_fps,
        )
        if not self.channel_mult or any(m <= 0 for m in self.channel_mult):
            raise ValueError(f"UNetConfig.channel_mult = {self.channel_mult!r}: needs one or more values > 0")
        widths = {
            f"channel_mult[{i}] * model_channels": m * self.model_channels
            for i, m in enumerate(self.channel_mult)
        }
        _check_group_divisible("UNetConfig", model_channels=self.model_channels, **widths)
        for width in widths.values():
            if width % self.head_channels:
                raise ValueError(
                    f"UNetConfig.head_channels = {self.head_channels}: must divide every level width {widths}"
                )
        allowed = {2**level for level in range(len(self.channel_mult))}
        if not set(self.attention_resolutions) <= allowed:
            raise ValueError(
                f"UNetConfig.attention_resolutions = {self.attention_resolutions!r}: "
                f"each must be one of the downsampling factors {sorted(allowed)}"
            )
        if self.image_attention_scale < 0:
            raise ValueError(f"UNetConfig.image_attention_scale = {self.image_attention_scale}: must be >= 0")

    @property
    def time_embed_dim(self) -> int:
        """Width of the timestep (and fps) embedding: 4 x model_channels."""
        return 4 * self.model_channels


@dataclass(frozen=True)
class ResamplerConfig:
    """The Perceiver resampler (`image_proj_model`): CLIP image tokens -> image context tokens.

    `num_queries` learned queries per frame x `video_length` frames; attention inner width is
    `heads * dim_head` (768 in the published model, deliberately not `dim`).
    """

    dim: int = 1024
    depth: int = 4
    dim_head: int = 64
    heads: int = 12
    num_queries: int = 16
    embedding_dim: int = 1280
    output_dim: int = 1024
    ff_mult: int = 4
    video_length: int = 16

    def __post_init__(self) -> None:
        _check_positive(
            "ResamplerConfig",
            dim=self.dim,
            depth=self.depth,
            dim_head=self.dim_head,
            heads=self.heads,
            num_queries=self.num_queries,
            embedding_dim=self.embedding_dim,
            output_dim=self.output_dim,
            ff_mult=self.ff_mult,
            video_length=self.video_length,
        )


@dataclass(frozen=True)
class TextTowerConfig:
    """OpenCLIP ViT-H-14 text transformer (`cond_stage_model.model`); Geo4D reads its penultimate layer."""

    width: int = 1024
    heads: int = 16
    layers: int = 24
    vocab_size: int = 49408
    context_length: int = 77
    embed_dim: int = 1024
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        _check_positive(
            "TextTowerConfig",
            width=self.width,
            heads=self.heads,
            vocab_size=self.vocab_size,
            context_length=self.context_length,
            embed_dim=self.embed_dim,
            mlp_ratio=self.mlp_ratio,
        )
        if self.layers < 2:
            raise ValueError(
                f"TextTowerConfig.layers = {self.layers}: must be >= 2 (penultimate layer output)"
            )
        if self.width % self.heads:
            raise ValueError(f"TextTowerConfig.heads = {self.heads}: must divide width {self.width}")


@dataclass(frozen=True)
class VisualTowerConfig:
    """OpenCLIP ViT-H-14 vision transformer (`embedder.model.visual`); Geo4D reads all tokens before ln_post."""

    image_size: int = 224
    patch_size: int = 14
    width: int = 1280
    heads: int = 16
    layers: int = 32
    embed_dim: int = 1024
    mlp_ratio: int = 4

    def __post_init__(self) -> None:
        _check_positive(
            "VisualTowerConfig",
            image_size=self.image_size,
            patch_size=self.patch_size,
            width=self.width,
            heads=self.heads,
            layers=self.layers,
            embed_dim=self.embed_dim,
            mlp_ratio=self.mlp_ratio,
        )
        if self.image_size % self.patch_size:
            raise ValueError(
                f"VisualTowerConfig.patch_size = {self.patch_size}: must divide image_size {self.image_size}"
            )
        if self.width % self.heads:
            raise ValueError(f"VisualTowerConfig.heads = {self.heads}: must divide width {self.width}")

    @property
    def num_tokens(self) -> int:
        """Class token + one token per patch: 257 for ViT-H-14 at 224 px."""
        return 1 + (self.image_size // self.patch_size) ** 2


@dataclass(frozen=True)
class VAEConfig:
    """Stable Diffusion's AutoencoderKL (`first_stage_model`) plus Geo4D's uncertainty adaptor heads.

    Spatial downsampling is 2 ** (len(channel_mult) - 1). The decoder adaptor has
    `adaptor_num_res_blocks + 1` ResBlocks at `adaptor_channels`, then GroupNorm, SiLU and a conv to
    `adaptor_out_channels`. Every GroupNorm has `norm_groups` groups; with one channel per group it
    would drop each feature's per-image mean, the absolute level that ray and point maps carry.
    """

    in_channels: int = 3
    out_channels: int = 3
    channels: int = 128
    channel_mult: tuple[int, ...] = (1, 2, 4, 4)
    num_res_blocks: int = 2
    latent_channels: int = 4
    scale_factor: float = 0.18215
    adaptor_channels: int = 128
    adaptor_out_channels: int = 1
    adaptor_num_res_blocks: int = 1
    norm_groups: int = GROUP_NORM_GROUPS

    def __post_init__(self) -> None:
        _check_positive(
            "VAEConfig",
            norm_groups=self.norm_groups,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            num_res_blocks=self.num_res_blocks,
            latent_channels=self.latent_channels,
            scale_factor=self.scale_factor,
            adaptor_out_channels=self.adaptor_out_channels,
            adaptor_num_res_blocks=self.adaptor_num_res_blocks,
        )
        if not self.channel_mult or any(m <= 0 for m in self.channel_mult):
            raise ValueError(f"VAEConfig.channel_mult = {self.channel_mult!r}: needs one or more values > 0")
        _check_group_divisible(
            "VAEConfig", self.norm_groups, channels=self.channels, adaptor_channels=self.adaptor_channels
        )

    @property
    def downsampling(self) -> int:
        """Pixels per latent cell along each axis: 8 for the published VAE."""
        return 2 ** (len(self.channel_mult) - 1)


@dataclass(frozen=True)
class NetworkConfig:
    """Every component of the Geo4D network. Use `NetworkConfig.full()` or `NetworkConfig.tiny()`.

    input_sizes: the landscape (W, H) input sizes the network was made for, in pixels; the pipeline
    picks the one closest to a video's aspect (core.frame_size.choose_model_size). Each side must be a
    multiple of `input_stride`. sampling_steps: the DDIM steps its weights sample best with, the
    pipeline's default (the published network: 5; the embedded tiny model: 1, see its model card).
    sampling_steps_only: the weights were trained only at the timesteps of that schedule (tiny: t = 999
    alone), so another step count asks them for predictions they never learned; the pipeline warns.
    """

    unet: UNetConfig = field(default_factory=UNetConfig)
    resampler: ResamplerConfig = field(default_factory=ResamplerConfig)
    text: TextTowerConfig = field(default_factory=TextTowerConfig)
    visual: VisualTowerConfig = field(default_factory=VisualTowerConfig)
    vae: VAEConfig = field(default_factory=VAEConfig)
    input_sizes: tuple[tuple[int, int], ...] = MODEL_SIZES
    sampling_steps: int = 5
    sampling_steps_only: bool = False

    def __post_init__(self) -> None:
        self._check_input_sizes()
        if not (isinstance(self.sampling_steps, int) and 1 <= self.sampling_steps <= 1000):
            raise ValueError(
                f"NetworkConfig.sampling_steps = {self.sampling_steps!r}: needs an integer 1..1000"
            )
        if not isinstance(self.sampling_steps_only, bool):
            raise ValueError(
                f"NetworkConfig.sampling_steps_only = {self.sampling_steps_only!r}: needs True or False"
            )
        context_dim = self.unet.context_dim
        if self.text.width != context_dim:
            raise ValueError(
                f"TextTowerConfig.width = {self.text.width}: must equal UNet context_dim {context_dim}"
            )
        if self.resampler.output_dim != context_dim:
            raise ValueError(
                f"ResamplerConfig.output_dim = {self.resampler.output_dim}: must equal UNet context_dim {context_dim}"
            )
        if self.resampler.embedding_dim != self.visual.width:
            raise ValueError(
                f"ResamplerConfig.embedding_dim = {self.resampler.embedding_dim}: "
                f"must equal the visual tower width {self.visual.width}"
            )
        if self.resampler.num_queries != self.unet.image_tokens_per_frame:
            raise ValueError(
                f"ResamplerConfig.num_queries = {self.resampler.num_queries}: "
                f"must equal UNet image_tokens_per_frame {self.unet.image_tokens_per_frame}"
            )
        if self.resampler.video_length != self.unet.temporal_length:
            raise ValueError(
                f"ResamplerConfig.video_length = {self.resampler.video_length}: "
                f"must equal UNet temporal_length {self.unet.temporal_length}"
            )
        if self.text.context_length != self.unet.text_tokens:
            raise ValueError(
                f"TextTowerConfig.context_length = {self.text.context_length}: "
                f"must equal UNet text_tokens {self.unet.text_tokens}"
            )
        if self.unet.out_channels != 4 * self.vae.latent_channels:
            raise ValueError(
                f"UNetConfig.out_channels = {self.unet.out_channels}: must be 4 modalities x "
                f"{self.vae.latent_channels} VAE latent channels"
            )
        if self.unet.in_channels != self.unet.out_channels + self.vae.latent_channels:
            raise ValueError(
                f"UNetConfig.in_channels = {self.unet.in_channels}: must be out_channels + VAE latent channels "
                f"({self.unet.out_channels + self.vae.latent_channels})"
            )

    @property
    def input_stride(self) -> int:
        """Pixels an input side must be a multiple of: VAE downsampling x UNet downsampling (64 for both presets)."""
        return self.vae.downsampling * 2 ** (len(self.unet.channel_mult) - 1)

    def _check_input_sizes(self) -> None:
        stride = self.input_stride
        sizes = self.input_sizes
        if not sizes or any(
            len(size) != 2 or any(not isinstance(side, int) or side <= 0 or side % stride for side in size)
            for size in sizes
        ):
            raise ValueError(
                f"NetworkConfig.input_sizes = {sizes!r}: needs one or more (width, height) pairs of positive "
                f"multiples of {stride} pixels"
            )

    @classmethod
    def full(cls) -> NetworkConfig:
        """The published Geo4D model (configs/inference_geo4d.yaml)."""
        return cls()

    @classmethod
    def tiny(cls) -> NetworkConfig:
        """Same structure and key set as `full` at small widths: for tests and the embedded demo model.

        It runs at 128x64 (a quarter of the published width): a 16x8 latent, small enough to train on a
        CPU (core/train). Every UNet level below the first is 64 wide, so each GroupNorm group holds at
        least 2 channels; the VAE uses 8 groups, 4 channels per group at its first level as in the
        published VAE (128 channels, 32 groups).
        """
        context_dim = 32
        return cls(
            unet=UNetConfig(
                model_channels=32, channel_mult=(1, 2, 2, 2), head_channels=16, context_dim=context_dim
            ),
            resampler=ResamplerConfig(
                dim=32, depth=2, dim_head=8, heads=3, embedding_dim=64, output_dim=context_dim
            ),
            text=TextTowerConfig(width=context_dim, heads=2, layers=3, embed_dim=context_dim),
            visual=VisualTowerConfig(width=64, heads=2, layers=2, embed_dim=context_dim),
            vae=VAEConfig(
                channels=32, channel_mult=(1, 2, 2, 2), num_res_blocks=1, adaptor_channels=32, norm_groups=8
            ),
            input_sizes=TINY_INPUT_SIZES,
            sampling_steps=1,
            sampling_steps_only=True,
        )

    @classmethod
    def small(cls) -> NetworkConfig:
        """`tiny` twice as wide at 256x128 (a 32x16 latent), to train on one GPU (core/train, preset small).

        The UNet's levels are 64, 128, 128 and 256 wide with 32-channel heads and a 64-wide context; the
        VAE's 64, 128, 128, 128 with 16 groups (4 channels per group at its first level, as `tiny`).
        """
        context_dim = 64
        return cls(
            unet=UNetConfig(
                model_channels=64, channel_mult=(1, 2, 2, 4), head_channels=32, context_dim=context_dim
            ),
            resampler=ResamplerConfig(
                dim=64, depth=2, dim_head=16, heads=4, embedding_dim=128, output_dim=context_dim
            ),
            text=TextTowerConfig(width=context_dim, heads=2, layers=3, embed_dim=context_dim),
            visual=VisualTowerConfig(width=128, heads=2, layers=2, embed_dim=context_dim),
            vae=VAEConfig(
                channels=64, channel_mult=(1, 2, 2, 2), num_res_blocks=1, adaptor_channels=64, norm_groups=16
            ),
            input_sizes=SMALL_INPUT_SIZES,
            sampling_steps=1,
            sampling_steps_only=True,
        )

    @classmethod
    def preset(cls, name: str) -> NetworkConfig:
        """The preset called `name` ("full", "small" or "tiny")."""
        presets = {"full": cls.full, "small": cls.small, "tiny": cls.tiny}
        if name not in presets:
            raise ValueError(f"network preset {name!r}: must be one of {sorted(presets)}")
        return presets[name]()
