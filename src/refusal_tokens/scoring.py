"""Prompt encoding shared by scoring and generation (``control.score``, ``control.HFBackend``).

Prompts are chat-templated with ``add_generation_prompt=True`` and left-padded; the callers sort them by length
into buckets (little padding) and give explicit ``position_ids`` from the attention mask (a plain forward does not
derive them under left padding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


def chat_prompts(tokenizer, conversations: Sequence[Sequence[Mapping[str, str]]]) -> list[list[int]]:
    return [tokenizer.apply_chat_template(list(c), add_generation_prompt=True, tokenize=True, return_dict=False)
            for c in conversations]


def end_of_turn_ids(tokenizer) -> list[int]:
    """Token ids that end an assistant turn: ``eos_token_id`` plus the chat template's own end-of-turn token
    (the first special token after an assistant message's content: ``<|im_end|>`` for SmolLM2, ``<|eot_id|>`` for
    Llama-3's chat format, whose ``eos_token`` is ``<|end_of_text|>``). Generation stops at any of them."""
    stops = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    marker = "Zq"
    try:
        ids = tokenizer.apply_chat_template([{"role": "user", "content": "x"}, {"role": "assistant", "content": marker}],
                                            tokenize=True, return_dict=False)
    except Exception:  # no chat template: nothing to add
        return stops
    content = tokenizer.encode(marker, add_special_tokens=False)
    special = set(tokenizer.all_special_ids) | {i for i, t in tokenizer.added_tokens_decoder.items() if t.special}
    for start in range(len(ids) - len(content) + 1):
        if ids[start:start + len(content)] == content:
            after = [i for i in ids[start + len(content):] if i in special]
            if after and after[0] not in stops:
                stops.append(after[0])
            break
    return stops


def left_pad(sequences: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(input_ids, attention_mask)`` with every sequence right-aligned (the next token comes at the end)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, width - len(seq):] = torch.tensor(list(seq), dtype=torch.long)
        mask[row, width - len(seq):] = 1
    return ids, mask
