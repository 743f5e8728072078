"""Tiny random-weight Stable Diffusion inpainting pipelines, built offline (tests and benchmarks).

Constructors verified in ../shared/notes/offline-facts.md §2. The tokenizer is a minimal byte-level
CLIP BPE vocabulary (every byte, its word-final form, and the special tokens).
"""

from __future__ import annotations

from pathlib import Path


def _components(in_channels: int, vae_blocks: int, seed: int) -> dict:
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    torch.manual_seed(seed)
    chars = list(bytes_to_unicode().values())
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    tok = CLIPTokenizer(vocab=vocab, merges=[], model_max_length=77, bos_token="<|startoftext|>",
                        eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=in_channels, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=(2, 4), norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=(32,) * (vae_blocks - 1) + (64,), in_channels=3, out_channels=3,
                        latent_channels=4, sample_size=128, down_block_types=("DownEncoderBlock2D",) * vae_blocks,
                        up_block_types=("UpDecoderBlock2D",) * vae_blocks)
    text = CLIPTextModel(CLIPTextConfig(hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=5,
                                        vocab_size=1000, max_position_embeddings=77, bos_token_id=0, eos_token_id=2,
                                        pad_token_id=1))
    sched = DDIMScheduler.from_config(dict(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
        set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon"))
    return dict(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)


def build_tiny_inpaint_pipeline(vae_blocks: int = 2, seed: int = 0):
    from diffusers import StableDiffusionInpaintPipeline

    return StableDiffusionInpaintPipeline(**_components(9, vae_blocks, seed))


def build_tiny_img2img_pipeline(vae_blocks: int = 2, seed: int = 0, controlnet: bool = False):
    """Img2img needs a 4-channel UNet (text-to-image layout); optionally with a tiny ControlNet from that UNet."""
    from diffusers import ControlNetModel, StableDiffusionControlNetImg2ImgPipeline, StableDiffusionImg2ImgPipeline

    parts = _components(4, vae_blocks, seed)
    if not controlnet:
        return StableDiffusionImg2ImgPipeline(**parts)
    # The conditioning embedding must downsample by the VAE's factor (2 ** (vae_blocks - 1)).
    cn = ControlNetModel.from_unet(parts["unet"], conditioning_embedding_out_channels=(16,) * (vae_blocks - 1) + (32,))
    return StableDiffusionControlNetImg2ImgPipeline(**parts, controlnet=cn)


def save_tiny_img2img_pipeline(folder: Path, vae_blocks: int = 2, controlnet: Path | None = None) -> Path:
    """Save the pipeline (and, with `controlnet`, its ControlNet separately, as a user would have it)."""
    pipe = build_tiny_img2img_pipeline(vae_blocks, controlnet=controlnet is not None)
    if controlnet is not None:
        pipe.controlnet.save_pretrained(controlnet)
        from diffusers import StableDiffusionImg2ImgPipeline

        pipe = StableDiffusionImg2ImgPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, tokenizer=pipe.tokenizer,
                                              unet=pipe.unet, scheduler=pipe.scheduler, safety_checker=None,
                                              feature_extractor=None, requires_safety_checker=False)
    pipe.save_pretrained(folder)
    return folder


def save_tiny_inpaint_pipeline(folder: Path, vae_blocks: int = 2) -> Path:
    build_tiny_inpaint_pipeline(vae_blocks).save_pretrained(folder)
    return folder
