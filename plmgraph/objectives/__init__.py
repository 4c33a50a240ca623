"""Training objectives as data: turn token ids into a model's inputs and labels.

    from plmgraph.objectives import blank_infilling
    batch = blank_infilling([[11, 12, 13, 14, 15, 16]], [[(4, 6), (2, 3)]], mask_id=3, sop_id=4, eop_id=5)
    out = model(batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                prefix_lengths=batch.prefix_lengths)
"""

from .blank_infilling import BlankInfillingBatch, blank_infilling, sample_spans

__all__ = ["BlankInfillingBatch", "blank_infilling", "sample_spans"]
