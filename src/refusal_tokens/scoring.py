"""First-token probabilities: p(each scheme token) at the first response position, in one batched forward.

Prompts are chat-templated with ``add_generation_prompt=True``, sorted by length into buckets (little padding),
left-padded, and given explicit ``position_ids`` from the attention mask (a plain forward does not derive them
under left padding). The softmax over the last position's logits is taken in float32.
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


@torch.no_grad()
def first_token_probs(model, tokenizer, conversations: Sequence[Sequence[Mapping[str, str]]],
                      token_ids: Sequence[int], batch_size: int = 16, progress: bool = False) -> torch.Tensor:
    """``[n_prompts, len(token_ids)]`` float32 probabilities of ``token_ids`` at the first response position."""
    if not conversations:
        raise ValueError("no prompts to score")
    encoded = chat_prompts(tokenizer, conversations)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    out = torch.empty(len(encoded), len(token_ids), dtype=torch.float32)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(batches, desc="scoring", unit="batch")
    was_training = model.training
    model.eval()
    index = torch.tensor(list(token_ids), device=device)
    for batch in batches:
        ids, mask = left_pad([encoded[i] for i in batch], pad)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                       position_ids=positions.to(device), logits_to_keep=1).logits[:, -1, :]
        probs = torch.softmax(logits.float(), dim=-1)[:, index]
        out[torch.tensor(batch)] = probs.cpu()
    model.train(was_training)
    return out


@torch.no_grad()
def greedy_generate(model, tokenizer, conversations: Sequence[Sequence[Mapping[str, str]]], max_new_tokens: int = 40,
                    batch_size: int = 8) -> list[str]:
    """Greedy continuations (special tokens kept, so a scheme token is visible), left-padded batches."""
    encoded = chat_prompts(tokenizer, conversations)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    device = next(model.parameters()).device
    texts: list[str] = [""] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    model.eval()
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        ids, mask = left_pad([encoded[i] for i in batch], pad)
        width = ids.shape[1]
        out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device), do_sample=False,
                             max_new_tokens=max_new_tokens, pad_token_id=pad)
        for row, i in enumerate(batch):
            texts[i] = tokenizer.decode(out[row, width:], skip_special_tokens=False).split(tokenizer.eos_token)[0]
    return texts
