"""Decoding Semantic IDs into ranked items: our decoders for fixed-length IDs, and HF's baseline.

Why our own decoders: transformers 5 moved group (diverse) beam search out of the library (it
now needs a Hub download, which fails offline) and dropped constrained beam search
(docs/facts.md). A Semantic ID is also a special case worth exploiting: every ID of a task has
the same short length L (2-4 tokens) and the valid IDs form a small prefix trie, so

* the encoder runs once per input, and the first decoder step once per input (not once per
  beam: all beams start from the same token);
* only the valid children of a beam's trie node are scored, by one ``gather`` over a padded
  ``[nodes, children]`` table, for every beam of every input at once (no Python per beam,
  unlike ``prefix_allowed_tokens_fn``);
* the cross-attention keys/values are shared by an input's beams: after the first step only the
  small self-attention cache is reordered.

Methods (``decoding.method``):

``diverse_beam``  the paper's diverse beam search (Vijayakumar et al. 2018; paper section 4:
                  60 beams, 30 groups, penalty 0.25). Beams are split into groups that extend
                  in turn at every step; a group's candidates lose ``diversity_penalty`` for each
                  time an earlier group picked the same token at this step (Hamming
                  diversity). The penalty steers the selection only: beams keep and are ranked
                  by the model's log-probability.
``trie_beam``     beam search over the trie of valid IDs (one group, no penalty).
``exact``         scores every valid ID of the task (teacher-forced log-probability, level by
                  level through the trie, in row-bounded batches) and keeps the top K: the
                  ceiling a beam search can reach. Feasible while the catalogue is small.
``hf_beam``       HF ``generate`` beam search constrained with ``prefix_allowed_tokens_fn``:
                  the reference implementation, kept for the speed benchmark.

Every decoder returns, per input, up to K *distinct items*, best first. An ID maps to its item
through the task's ID table (``SemanticIds.item_of``); a returned ID that is not an item raises
``InvalidIdError`` instead of being passed on. A disambiguation token is only ever the last
token of a full ID, so it never becomes an item of its own.

With ``exclude_history`` a recommendation ranking leaves out the items the user already
interacted with (the usual full-ranking protocol; on MovieLens a user rates a movie once, so
the held-out item is never among them). Our decoders drop them inside the search (a prefix whose
every item was seen is pruned too), so no beam is spent on them; ``hf_beam`` can only filter its
output.
"""
from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import InvalidIdError, ProfileError
from ..semantic_ids.ids import TASKS, SemanticIds
from .backbone import id_table

log = logging.getLogger(__name__)

METHODS = ("diverse_beam", "trie_beam", "exact", "hf_beam")
NEG_INF = float("-inf")


# ---- settings ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DecodingSettings:
    """The profile's ``decoding`` section, validated."""

    method: str = "diverse_beam"
    num_beams: int = 60
    num_groups: int = 30
    diversity_penalty: float = 0.25
    batch_size: int = 32
    exclude_history: bool = True
    exact_rows: int = 4096

    @classmethod
    def from_cfg(cls, decoding: dict, **overrides) -> "DecodingSettings":
        known = cls.__dataclass_fields__
        values = {k: v for k, v in {**decoding, **overrides}.items() if k in known}
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ProfileError(f"Unknown decoding method {self.method!r}. Choose one of {', '.join(METHODS)}.")
        if self.num_beams < 1 or self.batch_size < 1 or self.exact_rows < 1:
            raise ProfileError("decoding.num_beams, batch_size and exact_rows must be >= 1.")
        if self.diversity_penalty < 0:
            raise ProfileError("decoding.diversity_penalty must be >= 0.")
        if self.method == "diverse_beam":
            self.groups_for(self.method)

    def groups_for(self, method: str) -> int:
        """Beam groups of ``method``: ``num_groups`` for diverse beam search, else one."""
        if method != "diverse_beam":
            return 1
        if self.num_groups < 1 or self.num_beams % self.num_groups:
            raise ProfileError(f"decoding.num_beams ({self.num_beams}) must be a multiple of "
                               f"num_groups ({self.num_groups}) for diverse beam search.")
        return self.num_groups

    def params(self) -> dict:
        """What the method actually uses (for manifests and tables)."""
        used = {"method": self.method, "exclude_history": self.exclude_history}
        if self.method in ("diverse_beam", "trie_beam", "hf_beam"):
            used["num_beams"] = self.num_beams
        if self.method == "diverse_beam":
            used.update(num_groups=self.num_groups, diversity_penalty=self.diversity_penalty)
        if self.method == "exact":
            used["exact_rows"] = self.exact_rows
        return used


# ---- the trie of valid IDs -----------------------------------------------------------------------
class IdTrie:
    """The valid IDs of one task as a prefix trie stored level by level in padded tensors.

    Depth ``d`` has ``n_nodes[d]`` nodes (depth 0: the root; depth L: the items themselves, node
    index = item_id). For a node at depth ``d < L``:

    * ``child_tokens[d][node]``: the token ids that extend it to a valid prefix, padded with -1;
    * ``child_nodes[d][node]``: the depth-``d+1`` node each of those tokens leads to (at the
      last level: the item_id), padded with -1.

    For a node at depth ``d >= 1``: ``parent[d][node]`` and ``token_into[d][node]``.
    """

    def __init__(self, table: np.ndarray):
        table = np.asarray(table, dtype=np.int64)
        if table.ndim != 2 or len(table) == 0:
            raise ValueError("An ID table must be a non-empty [n_items, id_length] array.")
        self.table = table
        self.n_items, self.depth = table.shape
        node_at = np.zeros((self.n_items, self.depth + 1), dtype=np.int64)  # depth 0 = root
        for d in range(1, self.depth):
            node_at[:, d] = np.unique(table[:, :d], axis=0, return_inverse=True)[1].reshape(-1)
        node_at[:, self.depth] = np.arange(self.n_items)
        self.n_nodes = [int(node_at[:, d].max()) + 1 for d in range(self.depth + 1)]
        self.node_of_item = [torch.from_numpy(node_at[:, d].copy()) for d in range(self.depth + 1)]
        self.child_tokens, self.child_nodes, self.parent, self.token_into = [], [], [None], [None]
        for d in range(self.depth):
            edges = np.unique(np.stack([node_at[:, d], table[:, d], node_at[:, d + 1]], axis=1), axis=0)
            nodes, counts = np.unique(edges[:, 0], return_counts=True)
            width = int(counts.max())
            slot = np.arange(len(edges)) - np.repeat(np.cumsum(counts) - counts, counts)
            tokens = np.full((self.n_nodes[d], width), -1, dtype=np.int64)
            children = np.full((self.n_nodes[d], width), -1, dtype=np.int64)
            tokens[edges[:, 0], slot] = edges[:, 1]
            children[edges[:, 0], slot] = edges[:, 2]
            self.child_tokens.append(torch.from_numpy(tokens))
            self.child_nodes.append(torch.from_numpy(children))
            parent = np.full(self.n_nodes[d + 1], -1, dtype=np.int64)
            token = np.full(self.n_nodes[d + 1], -1, dtype=np.int64)
            parent[edges[:, 2]], token[edges[:, 2]] = edges[:, 0], edges[:, 1]
            self.parent.append(torch.from_numpy(parent))
            self.token_into.append(torch.from_numpy(token))
        if len(np.unique(table, axis=0)) != self.n_items:
            raise ValueError("Two items share an ID: the ID table must be unique per task.")
        self._copies: dict = {}

    def on(self, device) -> "IdTrie":
        """This trie with its tensors on ``device`` (cached; the CPU trie is itself)."""
        device = torch.device(device)
        if device.type == "cpu":
            return self
        if device not in self._copies:
            copy = object.__new__(IdTrie)
            copy.__dict__.update(self.__dict__)
            for name in ("child_tokens", "child_nodes", "parent", "token_into", "node_of_item"):
                setattr(copy, name, [None if t is None else t.to(device) for t in getattr(self, name)])
            copy._copies = {}
            self._copies[device] = copy
        return self._copies[device]

    def reachable(self, exclude: torch.Tensor) -> list[torch.Tensor]:
        """Per depth, [batch, n_nodes] bool: does the node still lead to an item not in ``exclude``?

        ``exclude`` is [batch, n_items] bool. A beam search that drops unreachable prefixes never
        spends a beam on a prefix whose every item is excluded.
        """
        allowed = (~exclude).to(torch.float32)
        reachable = []
        for d in range(self.depth):
            counts = torch.zeros((exclude.shape[0], self.n_nodes[d]), device=exclude.device)
            reachable.append(counts.index_add_(1, self.node_of_item[d], allowed) > 0)
        reachable.append(~exclude)
        return reachable

    def allowed_next(self) -> dict[tuple[int, ...], list[int]]:
        """prefix (tuple of token ids) -> the valid next tokens; for ``prefix_allowed_tokens_fn``."""
        allowed: dict[tuple[int, ...], set[int]] = {}
        for row in self.table.tolist():
            for d in range(self.depth):
                allowed.setdefault(tuple(row[:d]), set()).add(row[d])
        return {prefix: sorted(tokens) for prefix, tokens in allowed.items()}

    def check(self, items: np.ndarray, sequences: np.ndarray) -> None:
        """Raise ``InvalidIdError`` unless every returned (item, token sequence) is a real ID."""
        found = items >= 0
        if not found.any():
            return
        if (items[found] >= self.n_items).any() or not np.array_equal(self.table[items[found]], sequences[found]):
            raise InvalidIdError("A decoder returned a token sequence that is not the ID of any item.")


# ---- cross-attention shared by an input's beams ---------------------------------------------------------
#: An attention implementation registered with transformers' AttentionInterface (its documented
#: extension point): SDPA, except that when a layer's keys/values have fewer rows than its queries
#: (the cross-attention cache holds one row per prompt while the decoder runs one row per beam),
#: every prompt's beams are folded into the query axis of that prompt. Each beam still attends on
#: its own (one query never sees another), so the result is the same as copying the prompt's
#: keys/values once per beam, without the copy and with one larger matmul per prompt.
SHARED_CROSS_ATTENTION = "sid_shared_cross_attention"


def _shared_cross_attention(module, query, key, value, attention_mask, *args, position_bias=None, **kwargs):
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows, prompts = query.shape[0], key.shape[0]
    if rows == prompts or query.shape[2] != 1:
        if rows != prompts:  # several new tokens per row: copy keys/values per row instead
            group = rows // prompts
            key, value = key.repeat_interleave(group, 0), value.repeat_interleave(group, 0)
        return sdpa_attention_forward(module, query, key, value, attention_mask, *args,
                                      position_bias=position_bias, **kwargs)
    group = rows // prompts
    _, heads, _, dim = query.shape
    folded = query.view(prompts, group, heads, dim).transpose(1, 2)          # [prompts, heads, beams, dim]
    if attention_mask is not None:
        attention_mask = attention_mask[::group]                              # rows of a prompt share its mask
    if position_bias is not None and position_bias.shape[0] == rows:
        position_bias = position_bias[::group]
    out, _ = sdpa_attention_forward(module, folded, key, value, attention_mask, *args,
                                    position_bias=position_bias, **kwargs)   # [prompts, beams, heads, dim]
    return out.reshape(rows, 1, heads, dim), None


def _register_shared_cross_attention() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(SHARED_CROSS_ATTENTION, _shared_cross_attention)
    AttentionMaskInterface.register(SHARED_CROSS_ATTENTION, sdpa_mask)


@contextmanager
def shared_cross_attention(model):
    """Run ``model`` with :data:`SHARED_CROSS_ATTENTION` inside the block; yields whether it could.

    Only a model that uses SDPA switches (the registered function is SDPA plus the folding); any
    other keeps its attention, and the decoders then copy cross-attention keys/values per row.
    """
    original = getattr(model.config, "_attn_implementation", None)
    if original != "sdpa":
        yield False
        return
    _register_shared_cross_attention()
    model.set_attn_implementation(SHARED_CROSS_ATTENTION)
    try:
        yield model.config._attn_implementation == SHARED_CROSS_ATTENTION
    finally:
        model.set_attn_implementation(original)


# ---- model steps -----------------------------------------------------------------------------------
def _pad(input_ids: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(x) for x in input_ids)
    ids = torch.full((len(input_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(input_ids), width), dtype=torch.long)
    for row, x in enumerate(input_ids):
        ids[row, :len(x)] = torch.as_tensor(x, dtype=torch.long)
        mask[row, :len(x)] = 1
    return ids, mask


class _Stepper:
    """Encoder output of one batch, and one decoder step at a time for any set of rows.

    A row is (input, ID prefix); rows are laid out input-major. The HF cache carries the decoder's
    state between steps, and ``next`` says which earlier row each new row extends.
    """

    def __init__(self, model, input_ids: list[list[int]], pad_id: int, shared_cross: bool = False):
        self.model = model
        self.shared_cross = shared_cross  # cross-attention keys/values stay one row per prompt
        device = model.device
        ids, mask = _pad(input_ids, pad_id)
        self.mask = mask.to(device)
        self.encoded = model.get_encoder()(input_ids=ids.to(device), attention_mask=self.mask).last_hidden_state
        self.start = int(model.config.decoder_start_token_id)
        self.batch = len(input_ids)
        self.cache = None
        self._rows_key = None
        self._rows = (self.encoded, self.mask)

    def _run(self, tokens: torch.Tensor) -> torch.Tensor:
        from transformers.modeling_outputs import BaseModelOutput

        encoded, mask = self._rows
        out = self.model(encoder_outputs=BaseModelOutput(last_hidden_state=encoded), attention_mask=mask,
                         decoder_input_ids=tokens.view(-1, 1).to(self.model.device),
                         past_key_values=self.cache, use_cache=True)
        self.cache = out.past_key_values
        return torch.log_softmax(out.logits[:, -1, :].float(), dim=-1)

    def first(self) -> torch.Tensor:
        """[batch, vocab] log-probabilities of the first ID token, one row per input."""
        logp = self._run(torch.full((self.batch,), self.start, dtype=torch.long))
        # T5 caches keys/values as transposed views; copying rows out of a contiguous tensor (every
        # beam gets its input's cross-attention keys/values once) is several times faster
        for part in ("self_attention_cache", "cross_attention_cache"):
            for layer in getattr(getattr(self.cache, part, None), "layers", []):
                if getattr(layer, "keys", None) is not None:
                    layer.keys, layer.values = layer.keys.contiguous(), layer.values.contiguous()
        return logp

    def _align(self, input_of_row: torch.Tensor) -> None:
        key = (input_of_row.shape[0], input_of_row.data_ptr())
        if self._rows_key == key:
            return
        input_of_row = input_of_row.to(self.mask.device)
        mask = self.mask.index_select(0, input_of_row)
        if self._cross_attention_cached():
            # the model reads cross-attention keys/values from the cache and the encoder states only
            # for their shape: a zero-copy view saves copying rows x length x d_model floats
            encoded = self.encoded[:1].expand(len(input_of_row), -1, -1)
        else:
            encoded = self.encoded.index_select(0, input_of_row)
        self._rows, self._rows_key = (encoded, mask), key

    def _cross_attention_cached(self) -> bool:
        updated = getattr(self.cache, "is_updated", None)
        return bool(updated) and all(updated.values())

    def next(self, parent_rows: torch.Tensor, tokens: torch.Tensor, input_of_row: torch.Tensor,
             same_inputs: bool) -> torch.Tensor:
        """Extend row ``parent_rows[i]`` by ``tokens[i]``; return the new rows' next-token log-probs.

        ``input_of_row[i]``: the input new row ``i`` belongs to (pass the same tensor while the row
        layout stays the same). ``same_inputs``: every new row belongs to the same input as the row
        it replaces (beam reordering within inputs), so the cross-attention cache is already aligned
        and only the small self-attention cache moves.
        """
        device = self.model.device
        parent_rows = parent_rows.to(device)
        if (same_inputs or self.shared_cross) and hasattr(self.cache, "self_attention_cache"):
            self.cache.self_attention_cache.reorder_cache(parent_rows)
        else:
            self.cache.reorder_cache(parent_rows)
        self._align(input_of_row)
        return self._run(tokens.clamp(min=0))


# ---- our decoders --------------------------------------------------------------------------------
@torch.inference_mode()
def beam_search(model, input_ids: list[list[int]], trie: IdTrie, num_beams: int, num_groups: int = 1,
                diversity_penalty: float = 0.0, pad_id: int = 0, exclude: torch.Tensor | None = None):
    """(Diverse) beam search over the trie of valid IDs, vectorised over inputs and beams.

    Args:
        exclude: optional [batch, n_items] bool mask of items that may not be returned; prefixes
            that lead only to excluded items are pruned at every level.

    Returns:
        items [batch, num_beams] (item ids, -1 for beams that found no valid ID),
        scores [batch, num_beams] (model log-probability of the ID, -inf where items is -1),
        sequences [batch, num_beams, L] (token ids).
    """
    beams, groups = num_beams, num_groups
    width = beams // groups
    with shared_cross_attention(model) as shared:
        return _beam_search(_Stepper(model, input_ids, pad_id, shared), trie, beams, groups, width,
                            diversity_penalty, exclude)


def _beam_search(stepper, trie, beams, groups, width, diversity_penalty, exclude):
    batch = stepper.batch
    logp = stepper.first()
    vocab, device = logp.shape[-1], logp.device
    trie = trie.on(device)
    reachable = trie.reachable(exclude.to(device)) if exclude is not None else None
    score = torch.full((batch, beams), NEG_INF, device=device)
    score[:, ::width] = 0.0  # each group starts from one live beam at the root
    node = torch.zeros((batch, beams), dtype=torch.long, device=device)
    sequences = torch.zeros((batch, beams, 0), dtype=torch.long, device=device)
    input_of_row = torch.arange(batch, device=device).repeat_interleave(beams)
    batch_offsets = torch.arange(batch, device=device)[:, None] * beams
    for d in range(trie.depth):
        step_logp = logp.view(batch, 1, vocab).expand(batch, beams, vocab) if d == 0 else logp.view(batch, beams, vocab)
        tokens = trie.child_tokens[d][node]                 # [batch, beams, children]
        children = trie.child_nodes[d][node]
        cand = score.unsqueeze(-1) + step_logp.gather(2, tokens.clamp(min=0))
        cand = cand.masked_fill(tokens < 0, NEG_INF)
        if reachable is not None:  # prefixes whose every item is excluded are dead ends
            alive = reachable[d + 1].gather(1, children.clamp(min=0).view(batch, -1)).view_as(children)
            cand = cand.masked_fill(~alive, NEG_INF)
        n_children = tokens.shape[-1]
        if groups == 1:
            score, pick = cand.view(batch, -1).topk(beams, dim=1)
        else:
            score, pick = _select_diverse(cand, tokens, groups, width, diversity_penalty, vocab)
        parent = pick // n_children
        node = children.view(batch, -1).gather(1, pick)
        chosen = tokens.view(batch, -1).gather(1, pick)
        sequences = torch.cat([sequences.gather(1, parent.unsqueeze(-1).expand(-1, -1, d)), chosen.unsqueeze(-1)], -1)
        node = node.masked_fill(~torch.isfinite(score), 0)  # dead beams: keep indices valid, score stays -inf
        if d < trie.depth - 1:
            if d == 0:  # every beam's parent is its input's single first-step row
                parent_rows = input_of_row
            else:
                parent_rows = (batch_offsets + parent).view(-1)
            logp = stepper.next(parent_rows, chosen.view(-1), input_of_row, same_inputs=d > 0)
    items = node.masked_fill(~torch.isfinite(score), -1)
    return items.cpu().numpy(), score.cpu().numpy(), sequences.cpu().numpy()


def _select_diverse(cand: torch.Tensor, tokens: torch.Tensor, groups: int, width: int, penalty: float, vocab: int):
    """Pick ``width`` beams per group in turn, with Hamming diversity against earlier groups.

    ``cand`` [batch, beams, children] holds log-probabilities of every (beam, child) extension.
    Returns the chosen extensions' log-probabilities (without the penalty) and their flat index.
    """
    batch, beams, n_children = cand.shape
    used = torch.zeros((batch, vocab), device=cand.device)  # how often earlier groups chose each token at this step
    scores, picks = [], []
    for g in range(groups):
        own = slice(g * width, (g + 1) * width)
        group_cand = cand[:, own, :].reshape(batch, -1)
        group_tokens = tokens[:, own, :].reshape(batch, -1).clamp(min=0)
        penalised = group_cand - penalty * used.gather(1, group_tokens)
        _, local = penalised.topk(width, dim=1)
        chosen_score = group_cand.gather(1, local)
        scores.append(chosen_score)
        picks.append(local + g * width * n_children)  # flat index into [beams * children]
        alive = torch.isfinite(chosen_score).float()
        used.scatter_add_(1, group_tokens.gather(1, local), alive)
    return torch.cat(scores, 1), torch.cat(picks, 1)


@torch.inference_mode()
def exact_scores(model, input_ids: list[list[int]], trie: IdTrie, pad_id: int = 0) -> torch.Tensor:
    """[batch, n_items] log-probability of every item's ID for every input (teacher forcing).

    Walks the trie level by level: every node at depth d is one decoder row per input, so each
    distinct prefix is run once, not once per item that shares it.
    """
    with shared_cross_attention(model) as shared:
        return _exact_scores(_Stepper(model, input_ids, pad_id, shared), trie)


def _exact_scores(stepper, trie: IdTrie) -> torch.Tensor:
    batch = stepper.batch
    logp = stepper.first()                                   # rows: (input) at depth 0
    device = logp.device
    trie = trie.on(device)
    node_score = logp[:, trie.token_into[1]]                # depth-1 nodes (the items if L == 1)
    for d in range(1, trie.depth):
        n_parent, n_nodes = trie.n_nodes[d - 1], trie.n_nodes[d]
        parents = trie.parent[d]                             # depth-d node -> its depth-(d-1) parent
        parent_rows = (torch.arange(batch, device=device)[:, None] * n_parent + parents[None, :]).view(-1)
        input_of_row = torch.arange(batch, device=device).repeat_interleave(n_nodes)
        logp = stepper.next(parent_rows, trie.token_into[d].repeat(batch), input_of_row, same_inputs=False)
        logp = logp.view(batch, n_nodes, -1)
        child_parent, child_token = trie.parent[d + 1], trie.token_into[d + 1]
        node_score = node_score[:, child_parent] + logp[:, child_parent, child_token]
    return node_score  # depth L: one column per item


def exact_top_k(model, input_ids, trie: IdTrie, k: int, pad_id: int = 0, exclude: torch.Tensor | None = None):
    scores = exact_scores(model, input_ids, trie, pad_id)
    if exclude is not None:
        scores = scores.masked_fill(exclude.to(scores.device), NEG_INF)
    top, items = scores.topk(min(k, trie.n_items), dim=1)
    items = items.masked_fill(~torch.isfinite(top), -1).cpu().numpy()
    return items, top.cpu().numpy(), trie.table[np.maximum(items, 0)]


# ---- HF generate baseline ------------------------------------------------------------------------------
@torch.inference_mode()
def hf_beam_search(model, input_ids: list[list[int]], trie: IdTrie, num_beams: int, pad_id: int = 0,
                   allowed: dict | None = None):
    """HF ``generate`` beam search constrained by ``prefix_allowed_tokens_fn`` (the baseline)."""
    allowed = allowed if allowed is not None else trie.allowed_next()
    start = int(model.config.decoder_start_token_id)

    def allowed_tokens(batch_id: int, prefix: torch.Tensor) -> list[int]:
        seq = prefix.tolist()
        return allowed[tuple(seq[1:] if seq and seq[0] == start else seq)]

    ids, mask = _pad(input_ids, pad_id)
    out = model.generate(
        input_ids=ids.to(model.device), attention_mask=mask.to(model.device),
        num_beams=num_beams, num_return_sequences=num_beams, max_new_tokens=trie.depth,
        min_new_tokens=trie.depth, do_sample=False, early_stopping=True, length_penalty=0.0,
        prefix_allowed_tokens_fn=allowed_tokens, return_dict_in_generate=True, output_scores=True,
        decoder_start_token_id=start, pad_token_id=pad_id,
    )
    sequences = out.sequences[:, 1:1 + trie.depth].cpu().numpy().reshape(len(input_ids), num_beams, -1)
    scores = out.sequences_scores.float().cpu().numpy().reshape(len(input_ids), num_beams)
    index = {tuple(row): item for item, row in enumerate(trie.table.tolist())}
    items = np.array([[index.get(tuple(s), -1) for s in per_input] for per_input in sequences.tolist()])
    if (items < 0).any():
        raise InvalidIdError("HF generate returned a sequence that is not an item's ID.")
    return items, scores, sequences


# ---- ranking items for a frame of examples ----------------------------------------------------------
def _top_distinct(items: np.ndarray, scores: np.ndarray, k: int, seen: list[set[int]] | None = None) -> list[list[int]]:
    """Per row: items ordered by score, duplicates, misses (-1) and ``seen`` items dropped, first k."""
    ranked = []
    order = np.argsort(-scores, axis=1, kind="stable")
    for row in range(len(items)):
        skip = seen[row] if seen is not None else ()
        best = dict.fromkeys(int(i) for i in items[row, order[row]] if i >= 0 and int(i) not in skip)
        ranked.append(list(best)[:k])
    return ranked


class ItemDecoder:
    """Ranks items for prompts with one trained model, for both tasks and any method."""

    def __init__(self, model, tokenizer, ids: SemanticIds, settings: DecodingSettings):
        settings.validate()
        self.model, self.tokenizer, self.ids, self.settings = model.eval(), tokenizer, ids, settings
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.tries = {task: IdTrie(id_table(tokenizer, ids, task)) for task in TASKS}
        self._allowed: dict[str, dict] = {}

    def rank(self, task: str, input_ids: list[list[int]], k: int, seen: list[list[int]] | None = None,
             method: str | None = None) -> list[list[int]]:
        """Top-``k`` distinct item ids per prompt, best first (``seen`` items left out if asked)."""
        method = method or self.settings.method
        if method not in METHODS:
            raise ProfileError(f"Unknown decoding method {method!r}. Choose one of {', '.join(METHODS)}.")
        trie = self.tries[task]
        if k > self.settings.num_beams and method != "exact":
            log.warning("k=%d > num_beams=%d: beam decoders return at most num_beams items.", k, self.settings.num_beams)
        use_seen = self.settings.exclude_history and seen is not None
        order = np.argsort([len(x) for x in input_ids], kind="stable")  # similar lengths batch together
        batch_size = self.settings.batch_size
        if method == "exact":  # a batch's rows are inputs x trie nodes: bound them
            batch_size = max(1, min(batch_size, self.settings.exact_rows // max(trie.n_nodes[1:-1] or [1])))
        ranked: list[list[int] | None] = [None] * len(input_ids)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            prompts = [list(input_ids[i]) for i in chunk]
            chunk_seen = [set(seen[i]) for i in chunk] if use_seen else None
            exclude = self._exclude_mask(chunk_seen, trie.n_items) if use_seen else None
            items, scores, sequences = self._decode(method, task, prompts, trie, k, exclude)
            trie.check(items, sequences)
            for i, row in zip(chunk, _top_distinct(items, scores, k, chunk_seen)):
                ranked[i] = row
        return ranked

    def _decode(self, method, task, prompts, trie, k, exclude):
        s = self.settings
        if method == "exact":
            return exact_top_k(self.model, prompts, trie, k, self.pad_id, exclude)
        if method == "hf_beam":  # can only filter seen items afterwards (in _top_distinct)
            if task not in self._allowed:
                self._allowed[task] = trie.allowed_next()
            return hf_beam_search(self.model, prompts, trie, s.num_beams, self.pad_id, self._allowed[task])
        return beam_search(self.model, prompts, trie, s.num_beams, s.groups_for(method),
                           s.diversity_penalty if method == "diverse_beam" else 0.0, self.pad_id, exclude)

    @staticmethod
    def _exclude_mask(seen: list[set[int]], n_items: int) -> torch.Tensor:
        mask = torch.zeros((len(seen), n_items), dtype=torch.bool)
        for row, items in enumerate(seen):
            if items:
                mask[row, list(items)] = True
        return mask

    def rank_examples(self, examples: pd.DataFrame, k: int, method: str | None = None) -> pd.DataFrame:
        """Predictions for an examples frame: task, query_key, target, ranked (see stage.py)."""
        frames = []
        for task in TASKS:
            rows = examples[examples["task"] == task]
            if rows.empty:
                continue
            ranked = self.rank(task, list(rows["input_ids"]), k, list(rows["seen"]), method)
            frames.append(pd.DataFrame({"task": task, "query_key": rows["query_key"].to_numpy(np.int64),
                                        "target": rows["target"].to_numpy(np.int64), "ranked": ranked}))
        if not frames:
            return pd.DataFrame(columns=["task", "query_key", "target", "ranked"])
        return pd.concat(frames, ignore_index=True)

    def timed_rank_examples(self, examples: pd.DataFrame, k: int, method: str | None = None) -> tuple[pd.DataFrame, float]:
        started = time.perf_counter()
        predictions = self.rank_examples(examples, k, method)
        return predictions, time.perf_counter() - started
