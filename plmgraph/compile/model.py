"""`PLMModel`: the compiled model, and `ModelOutput`, what its forward returns.

The model is ordinary PyTorch: ``embed`` (the shared token matrix), one `Stack` per stack
(``encoder``, ``decoder``), an optional ``pooler`` and the ``heads``.  Module paths equal
graph node ids, so ``dict(model.named_parameters())`` has exactly the keys and shapes of
``model.graph.param_shapes()``.

Random initialisation (`init_weights`, run by `build` unless the device is ``meta``) follows
the spec's typed ``init`` field, per family: ``normal`` (weights ~ N(0, std), 0.02 by default;
with ``scaled_residual`` the projections that write into the residual stream, ``attn.out``,
``cross.out``, ``mlp.down``, expert ``down_weight``, get std / sqrt(2 * layers) as in GPT-2)
or ``fan_in`` (T5: N(0, fan_in**-0.5), embeddings N(0, 1)); see `init`.  Biases 0; norm
weights 1 (``1 - offset`` for offset RMSNorm, so the effective scale starts at 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ..errors import InputError
from ..kinds import kind
from . import checks
from .attention import KV
from .block import Block, Stack
from .glm import GLM2DPosition, check_glm_inputs
from .init import InitRule


@dataclass
class ModelOutput:
    """What `PLMModel.forward` returns."""

    logits: Tensor | None = None
    """The primary (first) head's output; None for a model without heads."""
    last_hidden_state: Tensor | None = None
    """Final hidden states [B, T, H] (the decoder's for encoder-decoder models)."""
    head_outputs: dict[str, Tensor] = field(default_factory=dict)
    """Every head's output by head name."""
    past_key_values: tuple[KV, ...] | None = None
    """Per-layer (key, value) [B, kv_heads, past + T, head_dim] when ``use_cache=True``."""
    encoder_last_hidden_state: Tensor | None = None
    """The encoder output of an encoder-decoder model (pass it back as ``encoder_outputs``)."""
    loss: Tensor | None = None
    """The training loss when ``labels`` (or a sentence label) were given; see `plmgraph.train.loss`."""


torch.export.register_dataclass(ModelOutput, serialized_type_name="plmgraph.ModelOutput")


class PLMModel(nn.Module):
    """A model compiled from an `ArchGraph`; see the module docstring for layout and init."""

    def __init__(self, *, spec: Any, graph: Any, embed: nn.ModuleDict | None, stacks: dict[str, Stack],
                 pooler: nn.Module | None, heads: dict[str, nn.Module], pooled_heads: set[str]) -> None:
        super().__init__()
        self.spec, self.graph = spec, graph
        self.family = spec.family
        if embed is not None:
            self.embed = embed
        for name, stack in stacks.items():
            setattr(self, name, stack)
        self.stack_names = list(stacks)
        if pooler is not None:
            self.pooler = pooler
        self.heads = nn.ModuleDict(heads)
        self.pooled_heads = pooled_heads
        #: multiple-choice heads: their model reads [B, C, T] inputs and they answer [B, C]
        self.choice_heads = {h.name for h in spec.heads if h.kind == "multiple_choice"}
        self.check_inputs = True
        """Check token-id ranges in forward (one host sync per call); set False to skip."""

    # ------------------------------------------------------------------ forward

    def forward(self, input_ids: Tensor | None = None, attention_mask: Tensor | None = None,
                token_type_ids: Tensor | None = None, decoder_input_ids: Tensor | None = None,
                pixel_values: Tensor | None = None, past_key_values: tuple[KV, ...] | None = None,
                use_cache: bool = False, position_ids: Tensor | None = None, *,
                decoder_attention_mask: Tensor | None = None, encoder_outputs: Tensor | None = None,
                task_type_ids: Tensor | None = None, prefix_lengths: Tensor | None = None,
                perm_mask: Tensor | None = None, target_mapping: Tensor | None = None, labels: Tensor | None = None,
                next_sentence_label: Tensor | None = None,
                sentence_order_label: Tensor | None = None) -> ModelOutput:
        """Run the model.

        Args:
            input_ids: [B, T] token ids (the encoder's input for encoder-decoder models); [B, C, T] for a
                model with a multiple_choice head (C candidates each; attention_mask and token_type_ids alike).
            attention_mask: [B, past + T] 1 = keep, 0 = padding (the encoder's for enc-dec).
            token_type_ids: [B, T] segment ids (default 0).
            decoder_input_ids: [B, T'] decoder ids (encoder-decoder only; required).
            pixel_values: [B, C, image, image] images (patch models).
            past_key_values: per-layer (key, value) from a previous call with ``use_cache``.
            use_cache: return the updated ``past_key_values`` (decoders).
            position_ids: [B, T] 0-based positions (default: past, past + 1, ...); [B, 2, T] for GLM
                2D positions (row 0: position in the text, row 1: position inside the span; default
                past, past + 1, ... and 0), see `glm`.
            decoder_attention_mask: [B, past + T'] decoder padding mask (encoder-decoder).
            encoder_outputs: [B, S, H] a previous call's ``encoder_last_hidden_state``; skips the encoder.
            task_type_ids: [B, T] task-type ids (ERNIE; default 0).
            prefix_lengths: [B] integer length of each sequence's bidirectional prefix (GLM's Part A,
                ``sep``); required by ``mask: prefix`` models except on cached calls past the prefix.
            perm_mask: [B, T, T] XLNet permutation mask, 1 = query i may not attend to token j.
            target_mapping: [B, P, T] XLNet: row p one-hot on the position the p-th prediction is for;
                runs the query stream, whose [B, P, ...] output becomes the hidden state and logits.
            labels: targets of the primary head; ``out.loss`` is the Hugging Face loss for it (next-token
                CE for decoders, CE on labels != -100 for encoders and encoder-decoders, class CE for
                classifiers), see `plmgraph.train.loss`.
            next_sentence_label, sentence_order_label: [B] targets of the nsp / sop head, added to the loss.

        Relative-attention models (Transformer-XL ``segment_memory``, XLNet ``two_stream``) use
        ``past_key_values`` for their segment memory: one [B, M, H] tensor per layer, returned
        (detached) with ``use_cache=True``; see `relative`.

        Raises:
            InputError: for inputs of the wrong rank, dtype, shape or range (see `checks`).
        """
        choices = None
        if self.choice_heads and input_ids is not None and input_ids.dim() == 3:
            # multiple choice: [B, C, T] -> the B·C candidate sequences as one batch; the choice heads'
            # scores come back as [B, C] (see plmgraph/kinds/head/choice.py)
            choices = input_ids.shape[:2]
            input_ids, attention_mask, token_type_ids = (
                None if x is None else x.reshape(-1, x.shape[-1]) for x in (input_ids, attention_mask, token_type_ids))
        if not torch.compiler.is_compiling():
            self._check(input_ids, attention_mask, token_type_ids, decoder_input_ids, pixel_values,
                        past_key_values, position_ids, decoder_attention_mask, encoder_outputs, prefix_lengths,
                        perm_mask, target_mapping)
        enc_out = None
        presents = None
        if self.family == "encoder-decoder":
            enc_out = encoder_outputs
            if enc_out is None:
                enc_out, _ = self.encoder(input_ids, attention_mask, token_type_ids=token_type_ids,
                                          task_type_ids=task_type_ids)
            h, presents = self.decoder(decoder_input_ids, decoder_attention_mask, position_ids=position_ids,
                                       past_key_values=past_key_values, use_cache=use_cache, memory=enc_out,
                                       memory_mask=attention_mask)
            last_mask = decoder_attention_mask
        else:
            stack: Stack = getattr(self, self.stack_names[0])
            two = {"perm_mask": perm_mask, "target_mapping": target_mapping} if perm_mask is not None or \
                target_mapping is not None else {}
            h, presents = stack(input_ids, attention_mask, token_type_ids=token_type_ids,
                                task_type_ids=task_type_ids, pixel_values=pixel_values, position_ids=position_ids,
                                past_key_values=past_key_values, use_cache=use_cache, prefix_lengths=prefix_lengths,
                                **two)
            last_mask = attention_mask
        outputs: dict[str, Tensor] = {}
        pooled = None
        if self.pooled_heads:  # kind eos pools by input_ids' tokens (BART), the others by the mask
            pooled = self.pooler(h, last_mask, ids=input_ids) if getattr(self.pooler, "kind", None) == "eos" else \
                self.pooler(h, last_mask)
        for name, head in self.heads.items():
            outputs[name] = head(pooled if name in self.pooled_heads else h)
            if choices is not None and name in self.choice_heads:
                outputs[name] = outputs[name].reshape(*choices)
        logits = next(iter(outputs.values())) if outputs else None
        loss = None
        if labels is not None or next_sentence_label is not None or sentence_order_label is not None:
            from ..train.loss import model_loss

            loss = model_loss(self, outputs, labels, next_sentence_label=next_sentence_label,
                              sentence_order_label=sentence_order_label, target_mapping=target_mapping)
        return ModelOutput(logits, h, outputs, presents, enc_out, loss)

    def _check(self, input_ids: Tensor | None, attention_mask: Tensor | None, token_type_ids: Tensor | None,
               decoder_input_ids: Tensor | None, pixel_values: Tensor | None, past: Any,
               position_ids: Tensor | None, decoder_attention_mask: Tensor | None,
               encoder_outputs: Tensor | None, prefix_lengths: Tensor | None = None, perm_mask: Tensor | None = None,
               target_mapping: Tensor | None = None) -> None:
        values = self.check_inputs
        vocab = self.spec.sizes.vocab
        first: Stack = getattr(self, self.stack_names[0])
        last: Stack = getattr(self, self.stack_names[-1])
        past_len = 0
        relative = getattr(first, "memory_cache", False)  # `relative.RelativeStack`: checks its own extras
        if relative and input_ids is not None:
            past_len = first.check(input_ids, past, token_type_ids, perm_mask, target_mapping)
        elif perm_mask is not None or target_mapping is not None:
            raise InputError("perm_mask and target_mapping are for two-stream attention (XLNet); this model has none")
        if past is not None and not relative:
            if last.causal is False and self.family == "encoder":
                raise InputError("past_key_values is only for decoders; this model is an encoder")
            if not last.causal and not getattr(last, "prefix", False):
                raise InputError("past_key_values needs a causal (or prefix) mask: this model's attention is "
                                 "bidirectional, so a cached step could not equal the full forward; run the whole "
                                 "sequence without past_key_values")
            checks.check_past(past, len(last.schedule), _batch(input_ids, decoder_input_ids))
            past_len = int(past[0][0].shape[2])
        patches = getattr(first.embed, "patches", None)
        if patches is not None:
            checks.check_pixels(pixel_values, patches.weight.shape[1], first.embed.image_size)
            return
        if self.family == "encoder-decoder":
            if decoder_input_ids is None:
                raise InputError("encoder-decoder models need decoder_input_ids (the decoder's input tokens), "
                                 "e.g. the labels shifted right behind the decoder start token")
            if input_ids is None and encoder_outputs is None:
                raise InputError("encoder-decoder models need input_ids (or encoder_outputs from an earlier call)")
            checks.check_ids("decoder_input_ids", decoder_input_ids, vocab, values=values)
            B, T = decoder_input_ids.shape
            checks.check_mask("decoder_attention_mask", decoder_attention_mask, B, past_len + T)
            checks.check_length("decoder_input_ids", past_len + T, last.embed.max_positions)
            if input_ids is not None:
                checks.check_ids("input_ids", input_ids, vocab, values=values)
                checks.check_mask("attention_mask", attention_mask, *input_ids.shape)
                checks.check_length("input_ids", input_ids.shape[1], first.embed.max_positions)
        else:
            if input_ids is None:
                raise InputError("input_ids is required: a [batch, seq] tensor of token ids")
            checks.check_ids("input_ids", input_ids, vocab, values=values)
            B, T = input_ids.shape
            checks.check_mask("attention_mask", attention_mask, B, past_len + T)
            checks.check_length("input_ids", past_len + T, first.embed.max_positions)
        segments = first.embed.segments
        if token_type_ids is not None and (not relative or segments is not None):  # XLNet: no table, any ids
            if segments is None:
                raise InputError("token_type_ids given, but this model has no segment embeddings (segments: 0)")
            if input_ids is not None and tuple(token_type_ids.shape) != tuple(input_ids.shape):
                raise InputError(f"token_type_ids must have the shape of input_ids {tuple(input_ids.shape)}, "
                                 f"got {tuple(token_type_ids.shape)}")
            checks.check_ids("token_type_ids", token_type_ids, segments, values=values, what="segments")
        ids = decoder_input_ids if self.family == "encoder-decoder" else input_ids
        check_glm_inputs(two_d=isinstance(getattr(last.embed, "position", None), GLM2DPosition),
                         prefix=getattr(last, "prefix", False), batch=ids.shape[0], seq=ids.shape[1], past=past_len,
                         position_ids=position_ids, prefix_lengths=prefix_lengths,
                         max_positions=last.embed.max_positions, values=values)

    # ----------------------------------------------------------------- helpers

    def stacks(self) -> list[Stack]:
        return [getattr(self, n) for n in self.stack_names]

    def blocks(self) -> list[Block]:
        """Every distinct transformer layer, in order: the unit to wrap for FSDP or checkpointing."""
        return [b for s in self.stacks() for b in s.layers.values()]

    def gradient_checkpointing(self, enable: bool = True) -> PLMModel:
        """Recompute each layer's activations in backward (training only) to save memory."""
        for s in self.stacks():
            s.checkpointing = enable
        return self

    def num_params(self) -> int:
        """Parameters, each shared or tied tensor counted once (equals ``graph.num_params()``)."""
        return sum(p.numel() for p in self.parameters())

    @torch.no_grad()
    def init_weights(self, seed: int | None = None) -> PLMModel:
        """(Re)initialise every parameter as described in the module docstring."""
        dev = next(self.parameters()).device
        gen = torch.Generator(device=dev) if seed is not None else None
        if gen is not None:
            gen.manual_seed(seed)
        init = self.spec.init
        fan_in = init.kind == "fan_in"
        std = getattr(init, "std", 0.02)
        layers = max(1, sum(len(s.schedule) for s in self.stacks()))
        resid_std = std / math.sqrt(2 * layers) if getattr(init, "scaled_residual", False) else std
        rule = InitRule(self, std=std, resid_std=resid_std, fan_in=fan_in, hidden=self.spec.sizes.hidden,
                        generator=gen)
        for nid, d in self.graph.nx.nodes(data=True):  # each node's kind initialises its own module
            if d["group"] != nid:
                continue  # shared weights: initialised by their owner
            try:
                module = self.get_submodule(nid)
            except AttributeError:
                continue  # no module of its own (inputs, sums, the adds of a shared layer)
            kind(d["kind"]).init(module, rule.at(nid, d["attrs"], d["role"]))  # no init facet: MissingFacet
        return self


def _batch(*tensors: Tensor | None) -> int:
    for t in tensors:
        if t is not None:
            return t.shape[0]
    return 0


__all__ = ["ModelOutput", "PLMModel"]
