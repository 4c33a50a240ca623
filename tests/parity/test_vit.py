"""ViT parity: conv patch embedding + CLS, learned positions, pre-norm, classifier on the CLS token."""

import torch
import transformers as tf
from parity_util import close, randomize, save_and_import


@torch.no_grad()
def test_vit_image_classification(tmp_path):
    torch.manual_seed(0)
    cfg = tf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=48, layer_norm_eps=1e-6, num_labels=5,
                       qkv_bias=False)
    hf = tf.ViTForImageClassification(cfg)
    randomize(hf)
    model = save_and_import(hf, tmp_path)
    px = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    ref = hf(pixel_values=px)
    base = hf.vit(pixel_values=px)
    out = model(pixel_values=px)
    close(out.last_hidden_state, base.last_hidden_state, "last_hidden_state")
    close(out.head_outputs["image_classification"], ref.logits, "logits")
