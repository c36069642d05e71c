"""bench/sft_throughput.py's frozen-block cache ceiling on a tiny random model: the skipped blocks hand their input
through unchanged, and the cache-building forward counts the tokens it was given; ``--alternate``'s order and its
round-by-round ratios, by hand."""

import torch

from refusal_tokens import tiny

from .bench_scripts import load

sft_throughput = load("sft_throughput")


def test_skipped_blocks_pass_their_input_through(tmp_path):
    tokenizer = tiny.tiny_tokenizer(["hello there, how are you", "fine thanks"], vocab_size=300)
    model = tiny.tiny_model(tokenizer, layers=3).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    seen = []
    model.get_decoder().layers[2].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    with torch.no_grad():
        model(ids)
        sft_throughput.skip_frozen(model, 2)
        model(ids)
        embedded = model.get_input_embeddings()(ids)
    # the input of block 2: the output of blocks 0–1 before, the embeddings themselves once they are skipped
    assert torch.equal(seen[1], embedded)
    assert not torch.equal(seen[0], embedded)
    assert len(model.get_decoder().layers) == 3  # the top block is still there


class Rows(dict):
    def __len__(self):
        return len(self["input_ids"])


def test_the_cache_build_is_timed_over_the_rows_it_was_given(tmp_path):
    base = tiny.save_tiny_base(tmp_path / "base", ["hello there, how are you", "fine thanks"])
    rows = Rows(input_ids=[[5, 6, 7], [8, 9, 10, 11, 12], [13, 14]])
    cost = sft_throughput.cache_build_cost(str(base), rows, k=1, rows=2, batch=2)
    assert (cost["rows"], cost["tokens"]) == (2, 3 + 5)           # the first two rows only
    assert (cost["train_rows"], cost["train_tokens"]) == (3, 10)  # and the split it stands for
    assert cost["tokens_per_second"] == cost["tokens"] / cost["seconds"]


def test_without_weight_gradients_backward_still_reaches_the_top_blocks_input():
    tokenizer = tiny.tiny_tokenizer(["hello there, how are you", "fine thanks"], vocab_size=300)
    model = tiny.tiny_model(tokenizer, layers=3)
    seen = []
    sft_throughput.weights_without_gradients(model, 1)
    model.get_decoder().layers[1].register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(args[0] if args else kwargs["hidden_states"]), with_kwargs=True)
    model(torch.tensor([[5, 6, 7, 8]]), labels=torch.tensor([[5, 6, 7, 8]])).loss.backward()
    top = [p for layer in model.get_decoder().layers[1:] for p in layer.parameters()]
    assert all(p.grad is None for p in top)               # no weight gradients above the cut …
    assert seen[0].requires_grad                           # … but the activations there carry one
    assert all(p.grad is None for p in model.get_decoder().layers[0].parameters())  # the cut detaches, as
    assert model.get_input_embeddings().weight.grad is not None  # freeze_bottom does; the tied head still learns


def test_alternate_reverses_the_order_every_other_round():
    assert sft_throughput.counterbalanced(["A", "B"], 3) == [(0, "A"), (0, "B"), (1, "B"), (1, "A"), (2, "A"), (2, "B")]


def test_ratios_are_taken_within_each_round():
    runs = [{"round": 0, "setting": "A", "tokens_per_second": 100.0},
            {"round": 0, "setting": "B", "tokens_per_second": 120.0},
            {"round": 1, "setting": "B", "tokens_per_second": 150.0},   # a faster machine in round 2: ratio 1.5
            {"round": 1, "setting": "A", "tokens_per_second": 100.0}]
    assert sft_throughput.paired_ratios(runs, ["A", "B"]) == {"B": [1.2, 1.5]}
