"""Training the joint search & recommendation model with HF ``Seq2SeqTrainer``.

The trainer gives us, without a hand-written loop: AdamW with decoupled weight decay, a linear
learning-rate decay, multi-GPU and bf16 on GPUs, per-epoch validation loss, and checkpoints a
later call resumes from (``checkpoint_dir``). Paper settings (section 4): AdamW, lr 0.002, batch
128, weight decay 0.01, 3 epochs; the profile says what this run uses.

Batches are grouped by prompt length (``train_sampling_strategy="group_by_length"``): a
recommendation prompt is 3-4x longer than a search prompt, and padding every search prompt to
the longest history in its batch would waste most of the encoder's work.
"""
from __future__ import annotations

import logging
import resource
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from ..errors import ProfileError
from .example_columns import ExampleColumns

log = logging.getLogger(__name__)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB, macOS bytes)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (1024 * 1024 if sys.platform == "darwin" else 1024), 1)


def resolve_bf16(setting) -> bool:
    """``auto``: bf16 only on a GPU that supports it (bf16 matmuls are ~400x slower on this CPU)."""
    gpu_bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if setting == "auto":
        return gpu_bf16
    if not isinstance(setting, bool):
        raise ProfileError(f"generative.bf16 must be auto, true or false, got {setting!r}.")
    if setting and not gpu_bf16:
        log.warning("generative.bf16 is true without a bf16-capable GPU: expect training to be very slow.")
    return setting


def resolve_compile(setting) -> bool:
    """``generative.torch_compile``: compile the model with ``torch.compile`` (the trainer's own flag).

    On a GPU a flan-t5-base step at batch 128 is bound by the host launching thousands of kernels,
    not by the GPU; compiling fuses some of them, which measured 5% faster and a third less GPU
    memory on an H100 (benchmarks/README_scale.md, "Measured on a GPU"). On this CPU compiling costs
    minutes and gains little, so profiles leave it off.
    """
    if not isinstance(setting, bool):
        raise ProfileError(f"generative.torch_compile must be true or false, got {setting!r}.")
    return setting


def as_columns(examples) -> ExampleColumns:
    """``examples`` (a frame of :data:`~helpers.generative.examples.COLUMNS`, or columns) as columns."""
    return examples if isinstance(examples, ExampleColumns) else ExampleColumns.from_frame(examples)


def to_hf_dataset(examples):
    """The two columns the trainer needs, ``input_ids`` and ``labels``, as a ``datasets.Dataset``.

    ``examples``: :class:`ExampleColumns` (read without a copy) or an examples frame.
    """
    import datasets
    from datasets.fingerprint import generate_random_fingerprint

    # A fingerprint of our own: without one, datasets hashes the whole table by pickling it, which
    # took 2.8 s and raised the peak from 2.1 to 3.9 GiB for 5M examples (~19 GiB predicted for
    # MovieLens-25M's 25M, benchmarks/README_scale.md). The trainer never caches a transform by it.
    return datasets.Dataset(as_columns(examples).to_arrow(), fingerprint=generate_random_fingerprint())


def length_grouped_trainer(**kwargs):
    """A ``Seq2SeqTrainer`` whose length-grouped samplers read the prompts' lengths from the columns.

    ``train_examples`` and ``eval_examples`` (:class:`ExampleColumns`, keyword arguments) give the
    lengths; every other argument goes to ``Seq2SeqTrainer``. The batches are those of the
    trainer's own sampler (same lengths, same generator). Why: without lengths the sampler reads
    the whole dataset row by row to measure each prompt, 16 s per million examples: 6.6 minutes
    of an idle GPU at every start and resume of a MovieLens-25M model. ``length_column_name``
    does not help: the trainer removes that column (not a model input) before building the
    sampler, and ``datasets`` 5 answers ``dataset["length"]`` with a lazy column read one element
    at a time (a sampler over it took 77 s per million examples; benchmarks/README_scale.md,
    "Train examples in memory").
    """
    from transformers import Seq2SeqTrainer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    class LengthGroupedTrainer(Seq2SeqTrainer):
        def __init__(self, *args, train_examples: ExampleColumns, eval_examples: ExampleColumns | None, **kw):
            super().__init__(*args, **kw)
            self.train_lengths = train_examples.input_lengths().tolist()
            self.eval_lengths = None if eval_examples is None else eval_examples.input_lengths().tolist()

        def _grouped(self, dataset, lengths) -> bool:  # our lengths are those of this dataset's rows
            return (self.args.train_sampling_strategy == "group_by_length" and lengths is not None
                    and (dataset is None or len(dataset) == len(lengths)))

        def _get_train_sampler(self, train_dataset=None):
            if not self._grouped(train_dataset, self.train_lengths):
                return super()._get_train_sampler(train_dataset)
            return LengthGroupedSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=self.train_lengths)

        def _get_eval_sampler(self, eval_dataset):
            if not self._grouped(eval_dataset, self.eval_lengths):
                return super()._get_eval_sampler(eval_dataset)
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return LengthGroupedSampler(self.args.eval_batch_size, lengths=self.eval_lengths,
                                        generator=torch.Generator().manual_seed(seed))

    return LengthGroupedTrainer(**kwargs)


def training_arguments(gen_cfg: dict, output_dir: Path, seed: int, with_eval: bool, n_train: int,
                       progress: bool = False):
    from transformers import Seq2SeqTrainingArguments

    batch_size = int(gen_cfg["batch_size"])
    steps_per_epoch = max(1, -(-n_train // batch_size))
    return Seq2SeqTrainingArguments(
        output_dir=str(output_dir),
        num_train_epochs=float(gen_cfg["epochs"]),
        per_device_train_batch_size=batch_size,
        per_device_eval_batch_size=batch_size * 2,
        learning_rate=float(gen_cfg["lr"]),
        weight_decay=float(gen_cfg["weight_decay"]),
        optim="adamw_torch",
        lr_scheduler_type="linear",
        warmup_steps=float(gen_cfg.get("warmup", 0.0)),
        seed=int(seed),
        data_seed=int(seed),
        bf16=resolve_bf16(gen_cfg.get("bf16", "auto")),
        torch_compile=resolve_compile(gen_cfg.get("torch_compile", False)),
        train_sampling_strategy="group_by_length",
        eval_strategy="epoch" if with_eval else "no",
        prediction_loss_only=True,
        # resumable: a re-run continues from the last checkpoint, every epoch or every save_steps steps
        save_strategy="steps" if gen_cfg.get("save_steps") else "epoch",
        save_steps=int(gen_cfg.get("save_steps") or 500),
        save_total_limit=1,
        logging_strategy="steps",
        logging_steps=max(1, steps_per_epoch // 4),  # four points per epoch for the training curve
        report_to="none",
        disable_tqdm=not progress,
        dataloader_num_workers=0,
        dataloader_pin_memory=torch.cuda.is_available(),
        use_cpu=not torch.cuda.is_available(),  # without it, torchrun on CPUs trains each rank alone (no DDP)
    )


def epoch_logger(label: str, n_examples: int):
    """A trainer callback logging one INFO line per epoch: train loss, examples/s, time left."""
    from transformers import TrainerCallback

    class EpochLogger(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.started, self.first_epoch = time.time(), state.epoch or 0.0

        def on_epoch_end(self, args, state, control, **kwargs):
            seconds, done = time.time() - self.started, (state.epoch or 0.0) - self.first_epoch
            loss = next((h["loss"] for h in reversed(state.log_history) if "loss" in h), float("nan"))
            left = seconds / done * (args.num_train_epochs - state.epoch) if done > 0 else float("nan")
            log.info("%s: epoch %.0f/%.0f, train loss %.3f, %.0f examples/s, %.0f s left", label, state.epoch,
                     args.num_train_epochs, loss, n_examples * done / max(seconds, 1e-9), left)

    return EpochLogger()


def train_seq2seq(model, tokenizer, train_examples, valid_examples,
                  gen_cfg: dict, seed: int, checkpoint_dir: Path, progress: bool = False,
                  label: str = "model", callbacks: list | None = None) -> dict:
    """Train ``model`` in place on the examples; return the training card (times, losses, memory).

    ``train_examples`` and ``valid_examples`` (or None): :class:`ExampleColumns` or examples frames.

    ``checkpoint_dir`` holds the trainer's per-epoch checkpoints; if it already holds one (an
    interrupted run of the same configuration), training resumes from it. ``callbacks``: more
    ``transformers.TrainerCallback`` objects (e.g. a benchmark's clock).
    """
    from transformers import DataCollatorForSeq2Seq, PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    train_examples = as_columns(train_examples)
    valid_examples = None if valid_examples is None else as_columns(valid_examples)
    if len(train_examples) == 0:
        raise ValueError("No training examples: the dataset has no train queries and no train history.")
    with_eval = valid_examples is not None and len(valid_examples) > 0
    args = training_arguments(gen_cfg, checkpoint_dir, seed, with_eval, len(train_examples), progress)
    trainer = length_grouped_trainer(
        train_examples=train_examples,
        eval_examples=valid_examples if with_eval else None,
        model=model,
        args=args,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        train_dataset=to_hf_dataset(train_examples),
        eval_dataset=to_hf_dataset(valid_examples) if with_eval else None,
        processing_class=tokenizer,
    )
    if not progress:
        trainer.remove_callback(PrinterCallback)  # keep notebooks quiet; the curve is in the card
    trainer.add_callback(epoch_logger(label, len(train_examples)))  # INFO: shown by the study runner only
    for callback in callbacks or ():
        trainer.add_callback(callback)
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    resume = get_last_checkpoint(str(checkpoint_dir))
    started = time.time()
    output = trainer.train(resume_from_checkpoint=resume)
    trainer.accelerator.wait_for_everyone()  # DDP: every rank is done (checkpoints too) before rank 0 cleans up
    seconds = time.time() - started
    history = trainer.state.log_history
    eval_losses = [h["eval_loss"] for h in history if "eval_loss" in h]
    train_losses = [h["loss"] for h in history if "loss" in h]
    return {
        "train_seconds": round(seconds, 2),
        "train_examples_per_second": round(output.metrics.get("train_samples_per_second", 0.0), 1),
        "train_runtime": output.metrics.get("train_runtime"),
        "resumed_from": Path(resume).name if resume else None,
        "epochs": float(gen_cfg["epochs"]),
        "steps": int(trainer.state.global_step),
        "n_train_examples": int(len(train_examples)),
        "n_train_examples_by_task": train_examples.task_counts(),
        "n_valid_examples": int(len(valid_examples)) if with_eval else 0,
        "final_train_loss": train_losses[-1] if train_losses else None,
        "final_valid_loss": eval_losses[-1] if eval_losses else None,
        "bf16": bool(args.bf16),
        "device": str(args.device),
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": peak_rss_mib(),
        "log_history": history,
    }


def training_curve(card: dict) -> pd.DataFrame:
    """Train and validation loss against epoch, from a card's ``log_history`` (for plots)."""
    rows = []
    for entry in card.get("log_history", []):
        if "loss" in entry:
            rows.append({"epoch": entry.get("epoch"), "split": "train", "loss": entry["loss"]})
        if "eval_loss" in entry:
            rows.append({"epoch": entry.get("epoch"), "split": "valid", "loss": entry["eval_loss"]})
    return pd.DataFrame(rows, columns=["epoch", "split", "loss"])


if __name__ == "__main__":  # python -m helpers.generative.train: one model as a job (helpers.generative.jobs)
    from helpers.generative.jobs import main

    sys.exit(main())
