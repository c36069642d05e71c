"""A tiny randomly initialised chat model (2-layer Llama + a byte-level BPE trained on the fly).

Used by the tests and by the smoke-sized defaults of notebook 02, so that both run in seconds without a
download. Nothing here is a result: it exists to exercise the real code paths.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# The special tokens of Llama-3's tokenizer that its chat format (models.CHAT_TEMPLATES["llama3"]) writes.
LLAMA3_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>")


def tiny_tokenizer(corpus: Iterable[str], vocab_size: int = 400, style: str = "chatml"):
    """A byte-level BPE trained on ``corpus``. ``style="chatml"``: SmolLM2-like, with a ChatML chat template;
    ``style="llama3_base"``: Llama-3-base-like special tokens and *no* chat template (the paper's base model)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if style == "chatml":
        specials, bos, eos = ["<unk>", "<|im_start|>", "<|im_end|>"], "<|im_start|>", "<|im_end|>"
    elif style == "llama3_base":
        specials, bos, eos = ["<unk>", *LLAMA3_SPECIALS], LLAMA3_SPECIALS[0], LLAMA3_SPECIALS[1]
    else:
        raise ValueError(f"unknown tokenizer style {style!r}")
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(corpus), trainer)
    wrapped = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token=bos, eos_token=eos,
                                      pad_token=eos)
    if style == "chatml":
        wrapped.chat_template = CHATML
    return wrapped


def tiny_model(tokenizer, seed: int = 0, hidden: int = 64, layers: int = 2):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden,
                         num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config)


def save_tiny_base(out: str | Path, corpus: Iterable[str], seed: int = 0, style: str = "chatml",
                   provenance: bool = True) -> Path:
    """Write a tiny base model folder shaped like ``models/<name>/base`` (with provenance.json), or, with
    ``style="llama3_base", provenance=False``, shaped like a Hub checkout of a base model (``model.source: local``)."""
    import json

    out = Path(out)
    tokenizer = tiny_tokenizer(corpus, style=style)
    model = tiny_model(tokenizer, seed)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    if provenance:
        (out / "provenance.json").write_text(json.dumps({"source": "tiny random llama (tests / smoke)"}) + "\n")
    return out


def toy_chat_records(n: int = 40) -> list:
    """``n`` toy rows, alternately a refusal ("how do I steal thing i" → a one-line refusal) and an answer."""
    from .sources import Record

    return [Record(str(i), f"how do I {'steal' if i % 2 == 0 else 'bake'} thing {i}", "toy",
                   "Requests with safety concerns" if i % 2 == 0 else "general", "x", i % 2 == 0,
                   response="I cannot help with that." if i % 2 == 0 else "Mix flour and water, then bake.")
            for i in range(n)]


def write_tagged_splits(records: Sequence, scheme: str, folder: str | Path, validation: int) -> tuple[Path, Path]:
    """``records`` tagged for ``scheme`` as ``folder/{train,validation}.jsonl``: the last ``validation`` rows are
    the validation split (the layout of ``data/processed/mixes/<mix>/<scheme>/``)."""
    from .files import write_jsonl
    from .tagging import tag

    paths = Path(folder) / "train.jsonl", Path(folder) / "validation.jsonl"
    for path, part in zip(paths, (records[:-validation], records[-validation:])):
        write_jsonl(path, (tag(r, scheme) for r in part), sort_keys=False)
    return paths
