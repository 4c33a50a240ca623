"""Output-head kinds: what the last hidden states are turned into.

``lm`` holds the LM and MLM heads (one module: they share every facet's code), ``classifier``
the linear classifiers (NSP, SOP, sequence, token, image), which share one spec class, ``span``
the question-answering head (start / end logits per token), ``choice`` the multiple-choice head,
``discriminator`` ELECTRA's replaced-token detection head (one logit per token).
The order of the imports is the order of the spec's `Head` union (its error messages list
the allowed kinds in that order).
"""

from . import lm, classifier, span, choice, discriminator  # noqa: I001  (the union's order)

__all__ = ["choice", "classifier", "discriminator", "lm", "span"]
