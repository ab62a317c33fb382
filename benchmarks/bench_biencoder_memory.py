"""Activation memory of one bi-encoder training step at the paper's scale, measured on CPU.

The paper fine-tunes all-mpnet-base-v2 with MultipleNegativesRankingLoss at batch 512 over item
texts of up to 256 word pieces. What a training step holds beyond the weights and optimizer
state is the tensors the forward pass saves for the backward pass. They are counted here exactly
(each storage once, weights left out) with ``torch.autograd.graph.saved_tensors_hooks``, on an
MPNet built from mpnet-base's config with random weights (sizes do not depend on the weights),
in train mode (dropout masks are saved too), followed by mean pooling and normalisation as in
the sentence-transformers model. Per text and per layer come from differences: 1 and 2 layers,
``batch`` and ``2 x batch`` texts, so whatever a forward pass saves once (e.g. the bf16 copies of
the weights under autocast) cancels, and the 12-layer model is ``embeddings + 12 x layer`` per
text. bf16 is measured under CPU autocast (CUDA autocast's lists of ops differ a little).

    .venv/bin/python benchmarks/bench_biencoder_memory.py --seq 256 --batch 2
"""
from __future__ import annotations

import argparse
import json
from contextlib import nullcontext

import torch


def saved_bytes(layers: int, batch: int, seq: int, bf16: bool) -> int:
    from transformers import MPNetConfig, MPNetModel

    torch.manual_seed(0)
    model = MPNetModel(MPNetConfig(num_hidden_layers=layers)).train()  # train(): dropout masks are saved too
    weights = {p.data_ptr() for p in model.parameters()}
    seen, total = set(), [0]

    def pack(tensor):
        ptr = tensor.untyped_storage().data_ptr()
        if ptr not in weights and ptr not in seen:
            seen.add(ptr)
            total[0] += tensor.untyped_storage().nbytes()
        return tensor

    ids = torch.randint(5, 30000, (batch, seq))
    mask = torch.ones_like(ids)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast:
        out = model(input_ids=ids, attention_mask=mask).last_hidden_state
        pooled = (out * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # mean pooling, as the model
        torch.nn.functional.normalize(pooled, dim=-1)
    return total[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--texts", type=int, nargs="*", default=[512, 64, 32],
                        help="texts per forward pass to report (512: plain MNRL at the paper's batch)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    for bf16 in (False, True):
        def per_text(layers: int) -> float:
            return (saved_bytes(layers, 2 * args.batch, args.seq, bf16)
                    - saved_bytes(layers, args.batch, args.seq, bf16)) / args.batch

        one, two = per_text(1), per_text(2)
        layer, embeddings = two - one, one - (two - one)
        total = embeddings + 12 * layer
        row = {"dtype": "bf16 autocast" if bf16 else "fp32", "seq": args.seq,
               "layer_MiB_per_text": round(layer / 2**20, 2), "per_text_MiB": round(total / 2**20, 2)}
        row.update({f"{n}_texts_GiB": round(n * total / 2**30, 2) for n in args.texts})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
