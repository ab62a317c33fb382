"""Does a larger decoding.batch_size decode faster on one CPU thread? (trie beam search, a trained model)

    SID_DATA_ROOT=<a data root holding a finished ml100k run> python benchmarks/bench_decode_batch.py

Decodes 1,000 test queries (every 16th) and 300 test users of the Multi-task seed-0 model with
each batch size, the first one twice (the second pass is the warm one), one torch thread.
"""
import time

import torch

from helpers.config import load_profile
from helpers.generative import stage
from helpers.generative.decoding import DecodingSettings, ItemDecoder
from helpers.generative.examples import ExampleBuilder


def main() -> None:
    torch.set_num_threads(1)
    cfg = load_profile("ml100k")
    inputs = stage.resolve_inputs(cfg, "multitask")
    trained = stage.load_model(cfg, "multitask", 0, inputs)
    examples = ExampleBuilder(inputs.dataset, inputs.semantic_ids, trained.tokenizer, cfg["generative"]).build("test")
    n_search = int((examples["task"] == "search").sum())
    sample = examples.iloc[list(range(0, n_search, 16))[:1000] + list(range(n_search, n_search + 300))]
    for batch_size in (32, 64, 128, 32):
        settings = DecodingSettings.from_cfg({**cfg["decoding"], "batch_size": batch_size})
        decoder = ItemDecoder(trained.model, trained.tokenizer, inputs.semantic_ids, settings)
        started = time.perf_counter()
        decoder.timed_rank_examples(sample, int(cfg["evaluation"]["k"]))
        print(f"batch_size {batch_size}: {len(sample) / (time.perf_counter() - started):.1f} prompts/s", flush=True)


if __name__ == "__main__":
    main()
