"""Play with the trained joint search & recommendation models: type a query, pick a user, browse
the Semantic-ID space, compare constructions side by side. Notebook 07 is a thin layer over it.

    >>> ex = Explorer("ml100k")                       # loads the dataset once
    >>> ex.search("a dark crime thriller from the nineties", "search")
    >>> ex.recommend(12, "rec")                       # the held-out test item is marked
    >>> ex.compare(["search", "rec"], query="a lighthearted family comedy")
    >>> ex.id_space("multitask")                      # items grouped by their first ID token
    >>> ex.id_space("multitask", prefix="<a_3>")      # ... then by their second, under <a_3>

Every method returns a pandas DataFrame. Models are loaded lazily, once per (construction, seed),
from the folders notebook 04 wrote (``helpers.generative.stage.load_model``); nothing is trained
here. Prompts are built exactly as the test prompts were: a typed query goes through
``ExampleBuilder.search_inputs`` (``"search: <query>"``, the model's tokenizer, truncated to
``generative.max_input_tokens``), a user's prompt is ``ExampleBuilder.rec_input`` of their train +
validation history (the rec test prompt), and ranking is ``ItemDecoder.rank`` with the profile's
``decoding.method``, leaving out the user's earlier items when ``decoding.exclude_history`` says so.

A *score* is the model's log-probability of the item's Semantic ID given the prompt (the sum over
the ID's tokens), the quantity the beam search ranks by: 0 is certain, more negative is less likely.

Errors say what to do: an unknown construction raises ``ProfileError``; an unknown user, item or
ID prefix, or an empty query, ``DataError``; a model, Semantic IDs or dataset not built yet
``MissingArtifactError`` with the command that builds it (``bash run.sh study --profile <p> --only 04``).

Users are the dataset's dense ``user_id`` (0 .. n_users - 1), items its ``item_id`` or a title.
"""
from __future__ import annotations

import difflib
import json
import re
import shlex
import statistics
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from . import artifacts
from .config import load_profile
from .errors import DataError, MissingArtifactError, ProfileError, StudyError

TASKS = ("search", "rec")
DEFAULT_K = 10
#: constructions shown first when the caller does not pick (the paper's trade-off, then the fusion)
FEATURED = ("search", "rec", "multitask", "fused_svd", "fused_concat")
ITEM_COLUMNS = ["item_id", "title", "year", "genres"]
RESULT_COLUMNS = ["construction", "rank", "item_id", "title", "year", "genres", "semantic_id", "score"]
_TOKEN = re.compile(r"<[^<>]+>")


@dataclass
class LoadedModel:
    """One trained model with everything needed to prompt it the way its test prompts were built."""

    construction: str
    seed: int
    model: object
    tokenizer: object
    ids: object        # helpers.semantic_ids.ids.SemanticIds
    builder: object    # helpers.generative.examples.ExampleBuilder
    decoder: object    # helpers.generative.decoding.ItemDecoder
    tables: dict       # task -> [n_items, id_length] token ids of every item's ID


# ---- scoring -----------------------------------------------------------------------------------
@torch.inference_mode()
def id_log_probs(model, prompt: list[int], sequences) -> np.ndarray:
    """Log-probability of each ID (a row of token ids) given one tokenized ``prompt``.

    Teacher forcing: the decoder reads ``[start] + id[:-1]`` and the log-softmax over the whole
    vocabulary of each next ID token is summed, which is what the trie beam search accumulates for
    the IDs it keeps and what ``decoding.exact_scores`` computes for every item.
    """
    from transformers.modeling_outputs import BaseModelOutput

    sequences = np.asarray(sequences, dtype=np.int64)
    if len(sequences) == 0:
        return np.zeros(0, dtype=np.float64)
    sequences = torch.as_tensor(sequences.reshape(len(sequences), -1))
    device = model.device
    ids = torch.as_tensor([list(prompt)], dtype=torch.long, device=device)
    mask = torch.ones_like(ids)
    encoded = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    n = len(sequences)
    labels = sequences.to(device)
    start = torch.full((n, 1), int(model.config.decoder_start_token_id), dtype=torch.long, device=device)
    out = model(encoder_outputs=BaseModelOutput(last_hidden_state=encoded.expand(n, -1, -1)),
                attention_mask=mask.expand(n, -1), decoder_input_ids=torch.cat([start, labels[:, :-1]], 1))
    logp = torch.log_softmax(out.logits.float(), dim=-1).gather(2, labels.unsqueeze(-1)).squeeze(-1)
    return logp.sum(1).double().cpu().numpy()


# ---- commands that build what is missing ---------------------------------------------------------
def _flatten(tree: dict, prefix: str = "") -> list[tuple[str, object]]:
    pairs = []
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            pairs.extend(_flatten(value, f"{prefix}{key}."))
        else:
            pairs.append((f"{prefix}{key}", value))
    return pairs


def study_command(profile: str, overrides: dict | None = None, only: tuple[str, ...] = ("04",),
                  extra: dict | None = None) -> str:
    """``bash run.sh study --profile <p> --only 04 --set key=value ...`` for these overrides."""
    merged = json.loads(json.dumps(overrides or {}))
    for dotted, value in (extra or {}).items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    flags = []
    for dotted, value in _flatten(merged):
        text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
        flags.append(f"--set {shlex.quote(f'{dotted}={text}')}")
    return " ".join(["bash run.sh study", f"--profile {shlex.quote(str(profile))}", "--only", *only, *flags])


# ---- the explorer ----------------------------------------------------------------------------------
class Explorer:
    """Query the trained models of one profile: search, recommend, browse IDs, compare.

    Args:
        profile: a profile name (``smoke``, ``ml100k``, ``paper``), the path of a YAML profile, or
            an already loaded profile dict (``load_profile(...)``).
        overrides: nested parameters to change, as in a notebook's ``OVERRIDES``; they pick the
            models trained with the same overrides.
        seed: the model seed to query (default: the profile's first ``generative.seeds``).
        k: how many items a ranking shows by default.
        threads: CPU threads torch uses while answering (restored afterwards). One prompt at a
            time on a small model is fastest on one thread, and on a busy 2-core machine two
            threads wait on each other (about 20 ms against 200 ms per query at ml100k size);
            ``None`` keeps torch's setting (a large backbone on many cores).
    """

    def __init__(self, profile: str | dict = "ml100k", overrides: dict | None = None, seed: int | None = None,
                 k: int = DEFAULT_K, threads: int | None = 1):
        from .data.stage import load_dataset
        from .generative.decoding import DecodingSettings

        if isinstance(profile, dict):
            if overrides:
                raise ProfileError("Pass overrides with a profile name, or apply them yourself with "
                                   "load_profile(name, overrides); not both.")
            self.cfg, self.profile = profile, str(profile["name"])
        else:
            self.cfg, self.profile = load_profile(profile, overrides), str(profile)
        self.overrides = overrides or {}
        self.seed = self._seed(self.cfg["generative"]["seeds"][0] if seed is None else seed)
        self.k = self._k(k)
        self.threads = None if threads is None else self._k(threads, "threads")
        self.settings = DecodingSettings.from_cfg(self.cfg["decoding"])
        try:
            self.ds = load_dataset(self.cfg)
        except MissingArtifactError as err:
            raise MissingArtifactError(
                f"{err} The whole pipeline up to the models: "
                f"`{study_command(self.profile, self.overrides, ('01', '02', '03', '04'))}`.") from None
        self.histories = self.ds.histories(("train", "valid"))  # what the rec test prompt sees
        self.test_items = self.ds.targets("test")
        items = self.ds.items[ITEM_COLUMNS].copy()
        items["popularity"] = self.ds.popularity()
        self.items = items
        self._ids: dict = {}
        self._models: dict = {}

    def __repr__(self) -> str:
        trained = len(self.trained_constructions())
        return (f"Explorer(profile={self.profile!r}, seed={self.seed}, items={self.ds.n_items}, "
                f"users={self.ds.n_users}, constructions={len(self.constructions)} ({trained} trained))")

    # ---- checks ------------------------------------------------------------------------------
    @property
    def constructions(self) -> list[str]:
        """Every construction of the profile, in profile order."""
        from .generative.stage import constructions

        return list(constructions(self.cfg))

    def _construction(self, construction) -> str:
        if not isinstance(construction, str) or construction not in self.constructions:
            raise ProfileError(f"Unknown construction {construction!r}. Profile {self.profile!r} has: "
                               f"{', '.join(self.constructions)}.")
        return construction

    def _constructions(self, constructions) -> list[str]:
        if constructions is None:
            return self.featured()
        if isinstance(constructions, str):
            constructions = [constructions]
        chosen = [self._construction(c) for c in constructions]
        if not chosen:
            raise ProfileError(f"Pick at least one construction of: {', '.join(self.constructions)}.")
        return list(dict.fromkeys(chosen))

    @staticmethod
    def _seed(seed) -> int:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ProfileError(f"A seed must be an integer such as 0, got {seed!r}.")
        return int(seed)

    @staticmethod
    def _k(k, what: str = "k (how many items to show)") -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise DataError(f"{what} must be a positive integer, got {k!r}.")
        return int(k)

    def user(self, user) -> int:
        """``user`` checked: a dataset user_id in 0 .. n_users - 1."""
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or not 0 <= user < self.ds.n_users:
            raise DataError(f"Unknown user {user!r}: users are the dataset's user_id, 0 .. {self.ds.n_users - 1} "
                            f"in profile {self.profile!r}; `users()` lists them with their history lengths.")
        return int(user)

    def item(self, item) -> int:
        """The item_id of ``item``: an item_id, or a title (exact, case-insensitive, or a unique part)."""
        n = self.ds.n_items
        if isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            if 0 <= item < n:
                return int(item)
            raise DataError(f"Unknown item {item!r}: item ids run 0 .. {n - 1}; `find_items(text)` looks titles up.")
        if not isinstance(item, str) or not item.strip():
            raise DataError(f"An item is an item_id or a title, got {item!r}.")
        titles = self.items["title"].astype(str)
        wanted = item.strip().lower()
        exact = np.flatnonzero(titles.str.lower().to_numpy() == wanted)
        if len(exact):
            return int(exact[0])
        part = np.flatnonzero(titles.str.lower().str.contains(wanted, regex=False).to_numpy())
        if len(part) == 1:
            return int(part[0])
        if len(part) > 1:
            shown = "; ".join(f"{i}: {titles.iloc[i]}" for i in part[:8])
            raise DataError(f"{item!r} matches {len(part)} titles ({shown}{' ...' if len(part) > 8 else ''}); "
                            f"pass the item_id or a longer part of the title.")
        close = difflib.get_close_matches(item.strip(), titles.tolist(), n=5, cutoff=0.5)
        hint = f" Close titles: {'; '.join(close)}." if close else ""
        raise DataError(f"Unknown item {item!r}: no title in profile {self.profile!r} contains it.{hint}")

    @staticmethod
    def _query(query) -> str:
        if not isinstance(query, str) or not query.strip():
            raise DataError(f"Type a query, e.g. 'a dark crime thriller from the nineties'; got {query!r}.")
        return query.strip()

    # ---- what exists ---------------------------------------------------------------------------
    def semantic_ids(self, construction: str):
        """The Semantic IDs of ``construction`` (loaded once)."""
        from .semantic_ids.stage import load_semantic_ids

        construction = self._construction(construction)
        if construction not in self._ids:
            try:
                ids = load_semantic_ids(self.cfg, construction)
            except MissingArtifactError as err:
                raise MissingArtifactError(
                    f"{err} Build them and the models with "
                    f"`{study_command(self.profile, self.overrides, ('01', '02', '03', '04'))}`.") from None
            if ids.n_items != self.ds.n_items:
                raise DataError(f"The Semantic IDs of {construction} cover {ids.n_items} items, the dataset "
                                f"{self.ds.n_items}: rebuild them (notebook 03).")
            self._ids[construction] = ids
        return self._ids[construction]

    def built_constructions(self) -> list[str]:
        """The constructions whose Semantic IDs are built (notebook 03), in profile order."""
        built = []
        for c in self.constructions:
            try:
                self.semantic_ids(c)
            except MissingArtifactError:
                continue
            built.append(c)
        return built

    def is_trained(self, construction: str, seed: int | None = None) -> bool:
        from .generative.stage import model_dir

        seed = self.seed if seed is None else self._seed(seed)
        return artifacts.is_complete(model_dir(self.cfg, self._construction(construction), seed))

    def trained_constructions(self, seed: int | None = None) -> list[str]:
        """The constructions whose model for ``seed`` is trained, in profile order."""
        return [c for c in self.constructions if self.is_trained(c, seed)]

    def featured(self, n: int = 2, seed: int | None = None) -> list[str]:
        """Up to ``n`` trained constructions to show first: search and rec (the trade-off), then others."""
        trained = self.trained_constructions(seed)
        if not trained:
            raise MissingArtifactError(
                f"No model is trained for profile {self.profile!r} (seed {self.seed if seed is None else seed}). "
                f"Train them with `{study_command(self.profile, self.overrides)}` "
                f"(notebook 04_generative_training).")
        ordered = [c for c in FEATURED if c in trained] + [c for c in trained if c not in FEATURED]
        return ordered[:n]

    def status(self, seed: int | None = None) -> pd.DataFrame:
        """One row per construction: Semantic IDs built, model trained (for ``seed``), loaded here."""
        seed = self.seed if seed is None else self._seed(seed)
        built = set(self.built_constructions())
        rows = []
        for c in self.constructions:
            rows.append({"construction": c, "seed": seed, "semantic_ids": c in built,
                         "model": self.is_trained(c, seed), "loaded": (c, seed) in self._models})
        return pd.DataFrame(rows)

    def model(self, construction: str, seed: int | None = None) -> LoadedModel:
        """The trained model of (construction, seed), loaded once, with its prompt builder and decoder."""
        from .generative.decoding import ItemDecoder
        from .generative.examples import ExampleBuilder
        from .generative.stage import load_model, model_dir

        construction = self._construction(construction)
        seed = self.seed if seed is None else self._seed(seed)
        key = (construction, seed)
        if key not in self._models:
            ids = self.semantic_ids(construction)
            try:
                with _quiet_loading():
                    trained = load_model(self.cfg, construction, seed)
            except MissingArtifactError:
                extra = {} if seed in self.cfg["generative"]["seeds"] else {"generative.seeds": [seed]}
                raise MissingArtifactError(
                    f"The {construction} model (seed {seed}) is not trained for profile {self.profile!r} "
                    f"with these parameters (looked in {model_dir(self.cfg, construction, seed)}). Train it with "
                    f"`{study_command(self.profile, self.overrides, extra=extra)}` (notebook "
                    f"04_generative_training trains every construction), or in Python with "
                    f"helpers.generative.stage.train_model(cfg, {construction!r}, {seed}).") from None
            builder = ExampleBuilder(self.ds, ids, trained.tokenizer, self.cfg["generative"])
            decoder = ItemDecoder(trained.model, trained.tokenizer, ids, self.settings)
            self._models[key] = LoadedModel(construction, seed, trained.model, trained.tokenizer, ids, builder,
                                            decoder, {"search": builder.search_ids, "rec": builder.rec_ids})
        return self._models[key]

    # ---- prompts ----------------------------------------------------------------------------------
    def _prompt(self, loaded: LoadedModel, query: str | None, user: int | None) -> tuple[str, list[int], list[int] | None]:
        if (query is None) == (user is None):
            raise DataError("Give either a query (search) or a user (recommendation), not both or neither.")
        if query is not None:
            return "search", loaded.builder.search_inputs([self._query(query)])[0], None
        user = self.user(user)
        history = self.histories[user]
        return "rec", loaded.builder.rec_input(history), history.tolist()

    def input_ids(self, construction: str, query: str | None = None, user: int | None = None,
                  seed: int | None = None) -> list[int]:
        """The tokenized prompt for a query or a user, exactly as a test prompt is built."""
        return self._prompt(self.model(construction, seed), query, user)[1]

    def prompt(self, construction: str, query: str | None = None, user: int | None = None,
               seed: int | None = None) -> pd.DataFrame:
        """How the model sees a query or a user: the prompt's text and word pieces, one row."""
        loaded = self.model(construction, seed)
        task, input_ids, _ = self._prompt(loaded, query, user)
        pieces = loaded.tokenizer.convert_ids_to_tokens(input_ids)
        unk = loaded.tokenizer.unk_token
        return pd.DataFrame([{
            "construction": loaded.construction, "task": task,
            "prompt": loaded.tokenizer.decode(input_ids, skip_special_tokens=True),
            "tokens": " ".join(pieces), "n_tokens": len(input_ids),
            "unknown_tokens": sum(p == unk for p in pieces) if unk else 0,
            "truncated": task == "search" and len(input_ids) >= loaded.builder.max_input_tokens,
        }])

    # ---- rankings ---------------------------------------------------------------------------------------
    @contextmanager
    def _threads(self):
        before = torch.get_num_threads()
        if self.threads is None or self.threads == before:
            yield
            return
        torch.set_num_threads(self.threads)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def _score(self, loaded: LoadedModel, input_ids: list[int], task: str, item: int) -> float:
        with self._threads():
            return float(id_log_probs(loaded.model, input_ids, loaded.tables[task][[item]])[0])

    def _ranking(self, construction: str, query: str | None, user: int | None, k: int | None,
                 seed: int | None) -> pd.DataFrame:
        loaded = self.model(construction, seed)
        k = self.k if k is None else self._k(k)
        task, input_ids, seen = self._prompt(loaded, query, user)
        with self._threads():
            ranked = loaded.decoder.rank(task, [input_ids], k, seen=None if seen is None else [seen])[0]
            scores = id_log_probs(loaded.model, input_ids, loaded.tables[task][ranked]) if ranked else np.zeros(0)
        rows = self.items.iloc[ranked]
        tokens = loaded.ids.tokens(task)
        return pd.DataFrame({
            "construction": construction, "rank": np.arange(1, len(ranked) + 1),
            "item_id": np.asarray(ranked, dtype=np.int64), "title": rows["title"].to_numpy(),
            "year": rows["year"].to_numpy(), "genres": rows["genres"].to_numpy(),
            "semantic_id": ["".join(tokens[i]) for i in ranked], "score": scores,
        }, columns=RESULT_COLUMNS)

    def search(self, query: str, construction: str | list[str] | None = None, k: int | None = None,
               seed: int | None = None) -> pd.DataFrame:
        """Top-``k`` items for a typed query, one block per construction (default: ``featured()``).

        Columns: construction, rank, item_id, title, year, genres, semantic_id (the item's search
        ID), score (log-probability of that ID given the query).
        """
        query = self._query(query)
        frames = [self._ranking(c, query, None, k, seed) for c in self._constructions(construction)]
        return pd.concat(frames, ignore_index=True)

    def recommend(self, user: int, construction: str | list[str] | None = None, k: int | None = None,
                  seed: int | None = None) -> pd.DataFrame:
        """Top-``k`` next items for a user from their train + validation history (the rec test prompt).

        Columns as ``search`` (semantic_id is the rec ID) plus ``test_item``: this is the user's
        held-out test item. Items of the history are left out when ``decoding.exclude_history``.
        """
        user = self.user(user)
        frames = [self._ranking(c, None, user, k, seed) for c in self._constructions(construction)]
        frame = pd.concat(frames, ignore_index=True)
        frame["test_item"] = frame["item_id"] == self.test_items[user]
        return frame

    def held_out(self, user: int, construction: str | list[str] | None = None, k: int | None = None,
                 seed: int | None = None) -> pd.DataFrame:
        """The user's test item under each construction: its rec ID, score and rank in the top ``k``."""
        user = self.user(user)
        target = int(self.test_items[user])
        rows = []
        for c in self._constructions(construction):
            loaded = self.model(c, seed)
            _, input_ids, _ = self._prompt(loaded, None, user)
            ranking = self._ranking(c, None, user, k, seed)
            found = ranking.index[ranking["item_id"] == target]
            rows.append({"construction": c, "user": user, "item_id": target,
                         "title": self.items["title"].iat[target],
                         "semantic_id": "".join(loaded.ids.tokens("rec")[target]),
                         "score": self._score(loaded, input_ids, "rec", target),
                         "rank": int(ranking["rank"].iat[found[0]]) if len(found) else None,
                         "k": len(ranking), "best_score": float(ranking["score"].max()) if len(ranking) else None})
        frame = pd.DataFrame(rows)
        frame["rank"] = pd.array(frame["rank"].tolist(), dtype="Int64")  # <NA>: not in the top k
        return frame

    def compare(self, constructions: list[str] | None = None, query: str | None = None, user: int | None = None,
                k: int | None = None, seed: int | None = None) -> pd.DataFrame:
        """Side by side: one row per rank, for each construction its item_id, title, score, and
        ``shared`` (the item is in every compared ranking); with a user also ``test_item``."""
        chosen = self._constructions(constructions)
        if user is not None and query is None:
            frame = self.recommend(user, chosen, k, seed)
        elif query is not None and user is None:
            frame = self.search(query, chosen, k, seed)
        else:
            raise DataError("Compare on a query or on a user: pass exactly one of query=... or user=....")
        sets = [set(rows["item_id"]) for _, rows in frame.groupby("construction", sort=False)]
        everywhere = set.intersection(*sets) if sets else set()
        frame["shared"] = frame["item_id"].isin(everywhere)
        fields = ["item_id", "title", "score", "shared"] + (["test_item"] if "test_item" in frame else [])
        blocks = {c: rows.set_index("rank")[fields] for c, rows in frame.groupby("construction", sort=False)}
        side = pd.concat([blocks[c] for c in chosen], axis=1, keys=chosen, names=["construction", "field"])
        return side.rename_axis("rank")

    # ---- users ------------------------------------------------------------------------------------------
    def users(self) -> pd.DataFrame:
        """Every user: history length (train + validation), their held-out test item."""
        lengths = np.array([len(h) for h in self.histories])
        return pd.DataFrame({"user": np.arange(self.ds.n_users), "history_items": lengths,
                             "test_item_id": self.test_items,
                             "test_title": self.items["title"].to_numpy()[self.test_items]})

    def history(self, user: int, last: int | None = None, with_test: bool = True) -> pd.DataFrame:
        """A user's most recent items, oldest first (default: the last ``generative.history_window``,
        what a rec prompt holds), and the held-out test item as the last row (``split`` test)."""
        user = self.user(user)
        last = int(self.cfg["generative"]["history_window"]) if last is None else self._k(last, "last (items shown)")
        rows = self.ds.interactions[self.ds.interactions["user_id"] == user]
        visible = rows[rows["split"] != "test"].tail(last)
        shown = pd.concat([visible, rows[rows["split"] == "test"]]) if with_test else visible
        items = self.items.iloc[shown["item_id"].to_numpy()]
        return pd.DataFrame({
            "step": np.arange(len(rows))[rows.index.get_indexer(shown.index)] + 1,
            "item_id": shown["item_id"].to_numpy(np.int64), "title": items["title"].to_numpy(),
            "year": items["year"].to_numpy(), "genres": items["genres"].to_numpy(),
            "rating": shown["rating"].to_numpy(), "date": pd.to_datetime(shown["timestamp"], unit="s").dt.date.to_numpy(),
            "split": shown["split"].to_numpy(),
        })

    def find_items(self, text: str, limit: int = 20) -> pd.DataFrame:
        """Items whose title contains ``text`` (case-insensitive), most popular first."""
        text = self._query(text)
        hits = self.items[self.items["title"].astype(str).str.contains(text, case=False, regex=False)]
        return hits.sort_values("popularity", ascending=False, kind="stable").head(limit).reset_index(drop=True)

    # ---- the ID space ------------------------------------------------------------------------------
    def _task(self, task: str) -> str:
        if task not in TASKS:
            raise DataError(f"task must be 'search' or 'rec' (which ID of an item), got {task!r}.")
        return task

    def _prefix(self, ids, task: str, prefix) -> list[str]:
        if prefix is None or prefix == "" or prefix == []:
            return []
        tokens = _TOKEN.findall(prefix) if isinstance(prefix, str) else list(prefix)
        if not tokens or (isinstance(prefix, str) and "".join(tokens) != prefix.strip()):
            raise DataError(f"An ID prefix is a run of tokens such as '<a_3>' or '<a_3><b_1>', got {prefix!r}.")
        if len(tokens) >= ids.id_length(task):
            raise DataError(f"{''.join(tokens)} is a whole {task} ID of {ids.construction}; a prefix is shorter "
                            f"than the {ids.id_length(task)} tokens of an ID.")
        if not any(seq[:len(tokens)] == tokens for seq in ids.tokens(task)):
            firsts = sorted({seq[0] for seq in ids.tokens(task)}, key=_natural)
            raise DataError(f"No {task} ID of {ids.construction} starts with {''.join(tokens)}. "
                            f"First tokens are: {' '.join(firsts[:12])}{' ...' if len(firsts) > 12 else ''}.")
        return tokens

    def items_with_prefix(self, construction: str, prefix, task: str = "search") -> pd.DataFrame:
        """Items whose ``task`` ID starts with ``prefix`` (``'<a_3>'`` or a token list), most popular first."""
        ids = self.semantic_ids(construction)
        tokens = self._prefix(ids, self._task(task), prefix)
        seqs = ids.tokens(task)
        members = [i for i, seq in enumerate(seqs) if seq[:len(tokens)] == tokens]
        frame = self.items.iloc[members].copy()
        frame.insert(4, "semantic_id", ["".join(seqs[i]) for i in members])
        return frame.sort_values(["popularity", "item_id"], ascending=[False, True], kind="stable").reset_index(drop=True)

    def neighbours(self, item, construction: str, level: int = 1, task: str = "search") -> pd.DataFrame:
        """The items whose ``task`` ID shares its first ``level`` tokens with ``item``'s."""
        item = self.item(item)
        ids = self.semantic_ids(construction)
        depth = ids.id_length(self._task(task))
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not 1 <= level < depth:
            raise DataError(f"level must be 1 .. {depth - 1} (tokens shared; {ids.construction}'s {task} IDs have "
                            f"{depth}), got {level!r}.")
        frame = self.items_with_prefix(construction, ids.tokens(task)[item][:level], task)
        frame["is_item"] = frame["item_id"] == item
        return frame

    def id_space(self, construction: str, prefix=None, level: int | None = None, task: str = "search",
                 examples: int = 3) -> pd.DataFrame:
        """Items grouped by their ID's leading tokens, with what each group has in common.

        Without ``prefix``: groups by the first token (or the first ``level`` tokens). With a prefix
        such as ``'<a_3>'``: the items under it, grouped by one more token. One row per group:
        prefix, items, top_genre with its share in the group and in the catalogue (``lift`` = their
        ratio), the three commonest genres, median year and year range, the most popular titles.
        Largest groups first.
        """
        ids = self.semantic_ids(construction)
        task = self._task(task)
        tokens = self._prefix(ids, task, prefix)
        depth = ids.id_length(task)
        level = len(tokens) + 1 if level is None else level
        if isinstance(level, bool) or not isinstance(level, (int, np.integer)) or not len(tokens) < level <= depth:
            raise DataError(f"level must be {len(tokens) + 1} .. {depth} (leading tokens to group by), got {level!r}.")
        seqs = ids.tokens(task)
        groups: dict[str, list[int]] = {}
        for item, seq in enumerate(seqs):
            if seq[:len(tokens)] == tokens:
                groups.setdefault("".join(seq[:level]), []).append(item)
        genre_sets = self._genre_sets()
        catalogue = _genre_shares(genre_sets, range(len(genre_sets)))
        years = self.items["year"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        popularity = self.items["popularity"].to_numpy()
        titles = self.items["title"].to_numpy()
        rows = []
        for key, members in groups.items():
            shares = _genre_shares(genre_sets, members)
            top = max(shares, key=shares.get) if shares else None
            known = years[members][~np.isnan(years[members])]
            best = sorted(members, key=lambda i: (-popularity[i], i))[:examples]
            rows.append({
                "prefix": key, "items": len(members), "top_genre": top,
                "top_genre_share": shares.get(top, np.nan) if top else np.nan,
                "catalogue_share": catalogue.get(top, np.nan) if top else np.nan,
                "genres": ", ".join(f"{g} {s:.0%}" for g, s in sorted(shares.items(), key=lambda x: -x[1])[:3]),
                "year_median": float(np.median(known)) if len(known) else np.nan,
                "years": f"{int(known.min())}-{int(known.max())}" if len(known) else "",
                "examples": "; ".join(str(titles[i]) for i in best),
            })
        frame = pd.DataFrame(rows)
        frame.insert(5, "lift", frame["top_genre_share"] / frame["catalogue_share"])
        order = sorted(range(len(frame)), key=lambda r: (-frame["items"].iat[r], _natural(frame["prefix"].iat[r])))
        return frame.iloc[order].reset_index(drop=True)

    def _genre_sets(self) -> list[frozenset]:
        return [frozenset(g for g in str(text).split("|") if g) for text in self.items["genres"]]

    def coherence(self, constructions: list[str] | None = None, level: int = 1, task: str = "search",
                  max_items: int = 3000, seed: int = 0) -> pd.DataFrame:
        """How alike the items that share their first ``level`` ID tokens are, per construction.

        ``same_genre``: the chance that two items of the same group share a genre, against
        ``same_genre_catalogue`` for two items drawn from the whole catalogue; ``year_gap`` /
        ``year_gap_catalogue``: the mean absolute difference of their years. Pairs of distinct
        items; groups and the catalogue are subsampled to ``max_items`` items (seeded) if larger.
        Without ``constructions``: every construction whose Semantic IDs are built.
        """
        task = self._task(task)
        if constructions is None:
            names = self.built_constructions()
        else:
            names = self._constructions(constructions)
        genre_sets = self._genre_sets()
        genres = sorted(set().union(*genre_sets))
        matrix = np.array([[g in s for g in genres] for s in genre_sets], dtype=np.float32)
        years = self.items["year"].astype("Float64").to_numpy(dtype=float, na_value=np.nan)
        rng = np.random.default_rng(seed)
        everyone = np.arange(self.ds.n_items)
        if len(everyone) > max_items:
            everyone = rng.choice(everyone, max_items, replace=False)
        base_genre, base_year = _pair_stats(matrix, years, [everyone])
        rows = []
        for c in names:
            ids = self.semantic_ids(c)
            if not 1 <= level < ids.id_length(task):
                raise DataError(f"level must be 1 .. {ids.id_length(task) - 1} for {c}, got {level!r}.")
            groups: dict[tuple, list[int]] = {}
            for item, seq in enumerate(ids.tokens(task)):
                groups.setdefault(tuple(seq[:level]), []).append(item)
            members = [np.asarray(m if len(m) <= max_items else rng.choice(m, max_items, replace=False))
                       for m in groups.values()]
            same_genre, year_gap = _pair_stats(matrix, years, members)
            rows.append({"construction": c, "task": task, "level": level, "groups": len(groups),
                         "items_per_group": self.ds.n_items / len(groups),
                         "same_genre": same_genre, "same_genre_catalogue": base_genre,
                         "year_gap": year_gap, "year_gap_catalogue": base_year})
        return pd.DataFrame(rows)

    # ---- speed ---------------------------------------------------------------------------------------------
    def timing(self, constructions: list[str] | None = None, query: str = "a funny comedy",
               user: int = 0, repeats: int = 5) -> pd.DataFrame:
        """Seconds to answer one query and one user per construction, model already loaded (median
        of ``repeats`` after a warm-up): what a person waits for in the notebook."""
        rows = []
        for c in self._constructions(constructions):
            self.model(c)
            for task, call in (("search", lambda: self.search(query, c)), ("rec", lambda: self.recommend(user, c))):
                call()
                seconds = []
                for _ in range(max(1, repeats)):
                    started = time.perf_counter()
                    call()
                    seconds.append(time.perf_counter() - started)
                rows.append({"construction": c, "task": task, "seconds": statistics.median(seconds),
                             "threads": self.threads or torch.get_num_threads()})
        return pd.DataFrame(rows)


# ---- small helpers ---------------------------------------------------------------------------------------
@contextmanager
def _quiet_loading():
    """No "Loading weights" bar from transformers while a model loads (in a notebook with
    ipywidgets it would be a widget, which a saved notebook or its HTML cannot show)."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def _natural(text: str) -> list:
    """Sort key that puts <a_2> before <a_10>."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _genre_shares(genre_sets: list[frozenset], members) -> dict[str, float]:
    members = list(members)
    counts: dict[str, int] = {}
    for i in members:
        for g in genre_sets[i]:
            counts[g] = counts.get(g, 0) + 1
    return {g: n / len(members) for g, n in counts.items()} if members else {}


def _pair_stats(matrix: np.ndarray, years: np.ndarray, groups: list[np.ndarray]) -> tuple[float, float]:
    """Over all pairs of distinct items within each group: share with a common genre, mean |year gap|."""
    shared = pairs = 0.0
    gap = gap_pairs = 0.0
    for members in groups:
        n = len(members)
        if n < 2:
            continue
        g = matrix[members]
        common = (g @ g.T) > 0
        shared += common.sum() - np.trace(common)
        pairs += n * (n - 1)
        y = years[members]
        y = y[~np.isnan(y)]
        if len(y) >= 2:
            diffs = np.abs(y[:, None] - y[None, :])
            gap += diffs.sum()
            gap_pairs += len(y) * (len(y) - 1)
    return (shared / pairs if pairs else float("nan")), (gap / gap_pairs if gap_pairs else float("nan"))


# ---- widgets (JupyterLab) ----------------------------------------------------------------------------------
# The results are rendered into an HTML widget's value, not captured by an Output widget: a headless
# run (papermill, nbclient) then only creates widgets, and never takes part in the output-capture
# protocol that can leave nbclient waiting on a cell.
_TABLE_STYLE = ("<style>.sid-explore table{border-collapse:collapse;font-size:12px}"
                ".sid-explore th,.sid-explore td{padding:2px 8px;text-align:left;border-bottom:1px solid #ddd}"
                ".sid-explore h4{margin:10px 0 4px}</style>")


def _ipywidgets():
    try:
        import ipywidgets
    except ImportError:
        return None
    return ipywidgets


def show(box) -> None:
    """Display a widget box from ``search_box`` & co., or say how to get one (headless runs work)."""
    from IPython.display import display

    if box is None:
        print("Interactive version: `pip install ipywidgets` and open this notebook in JupyterLab.")
    else:
        display(box)


def render(sections: list[tuple[str, pd.DataFrame]]) -> str:
    """Titled tables as one HTML fragment (what the widgets show)."""
    import html

    parts = [_TABLE_STYLE, '<div class="sid-explore">']
    for title, frame in sections:
        parts.append(f"<h4>{html.escape(title)}</h4>")
        parts.append(frame.to_html(border=0, float_format=lambda x: f"{x:.3f}", na_rep=""))
    parts.append("</div>")
    return "".join(parts)


def _refresh(view, make) -> None:
    import html

    try:
        view.value = render(make())
    except StudyError as err:  # a typo in a box shows the message, it does not break the widget
        view.value = f"<pre>{html.escape(f'{type(err).__name__}: {err}')}</pre>"


def _untrained(w, explorer: Explorer):
    return w.HTML(f"No model is trained yet: run <code>{study_command(explorer.profile, explorer.overrides)}</code>.")


def _construction_picker(w, explorer: Explorer, constructions: list[str] | None):
    """A multiple choice of the trained constructions (the featured ones picked), or None if none is trained."""
    options = explorer.trained_constructions()
    if not options:
        return None
    chosen = tuple(c for c in (constructions or explorer.featured()) if c in options) or (options[0],)
    return w.SelectMultiple(options=options, value=chosen, description="construction", rows=min(6, len(options)))


def search_box(explorer: Explorer, query: str = "", constructions: list[str] | None = None):
    """A query box and a construction picker; shows one ranking, or several side by side.

    Returns an ipywidgets box, or None when ipywidgets is not installed (the notebook then shows
    only its fixed example).
    """
    w = _ipywidgets()
    if w is None:
        return None
    pick = _construction_picker(w, explorer, constructions)
    if pick is None:
        return _untrained(w, explorer)
    text = w.Text(value=query, placeholder="type a query and press Enter", description="query",
                  continuous_update=False, layout=w.Layout(width="70%"))
    k = w.BoundedIntText(value=explorer.k, min=1, max=100, description="k", layout=w.Layout(width="12em"))
    view = w.HTML()

    def make():
        if not pick.value:
            return []
        if len(pick.value) == 1:
            return [(f"{pick.value[0]}: {text.value}", explorer.search(text.value, pick.value[0], k.value))]
        return [(f"side by side: {text.value}", explorer.compare(list(pick.value), query=text.value, k=k.value))]

    for control in (text, pick, k):
        control.observe(lambda _: _refresh(view, make), names="value")
    if query:
        _refresh(view, make)
    return w.VBox([w.HBox([text, k]), pick, view])


def user_box(explorer: Explorer, user: int = 0, constructions: list[str] | None = None):
    """A user picker: their recent history, then each picked construction's recommendations."""
    w = _ipywidgets()
    if w is None:
        return None
    pick = _construction_picker(w, explorer, constructions)
    if pick is None:
        return _untrained(w, explorer)
    picker = w.BoundedIntText(value=user, min=0, max=explorer.ds.n_users - 1, description="user",
                              layout=w.Layout(width="14em"))
    view = w.HTML()

    def make():
        sections = [(f"user {picker.value}: recent history, held-out test item last", explorer.history(picker.value))]
        if pick.value:
            sections += [("recommendations", explorer.compare(list(pick.value), user=picker.value)),
                         ("the held-out test item", explorer.held_out(picker.value, list(pick.value)))]
        return sections

    for control in (picker, pick):
        control.observe(lambda _: _refresh(view, make), names="value")
    _refresh(view, make)
    return w.VBox([picker, pick, view])


def id_space_box(explorer: Explorer, construction: str | None = None):
    """A construction picker and a prefix box: the groups under a prefix and the items in it."""
    w = _ipywidgets()
    if w is None:
        return None
    built = explorer.built_constructions()
    if not built:
        command = study_command(explorer.profile, explorer.overrides, ("01", "02", "03"))
        return w.HTML(f"No Semantic IDs yet: run <code>{command}</code>.")
    pick = w.Dropdown(options=built, value=construction if construction in built else built[0],
                      description="construction")
    task = w.ToggleButtons(options=list(TASKS), value="search", description="ID")
    prefix = w.Text(value="", placeholder="e.g. <a_3> (empty: first tokens)", description="prefix",
                    continuous_update=False)
    view = w.HTML()

    def make():
        groups = explorer.id_space(pick.value, prefix=prefix.value or None, task=task.value)
        if not prefix.value:
            return [(f"{pick.value}: items by first {task.value}-ID token", groups)]
        return [(f"{pick.value}: under {prefix.value}, by the next token", groups),
                (f"the items under {prefix.value}", explorer.items_with_prefix(pick.value, prefix.value, task.value))]

    for control in (pick, task, prefix):
        control.observe(lambda _: _refresh(view, make), names="value")
    _refresh(view, make)
    return w.VBox([w.HBox([pick, task]), prefix, view])
