"""Stage 04: the joint generative search & recommendation model (paper, section 4).

* ``backbone``: the seq2seq model and tokenizer (``t5-config`` offline, flan-t5-base or any HF
  seq2seq folder), with the Semantic-ID tokens added.
* ``examples``: search prompts (query -> search ID) and recommendation prompts (recent history
  as rec IDs -> next item's rec ID), per split.
* ``train``: HF ``Seq2SeqTrainer`` with the profile's settings, returning a training card.
* ``decoding``: our vectorised decoders for fixed-length IDs (diverse beam search, trie beam
  search, exact top-K) and HF ``generate`` as the baseline; IDs map back to items.
* ``stage``: cached, atomic entry points: ``train_model``/``load_model``, ``predict``/
  ``load_predictions``, ``train_all``/``predict_all``.
"""
