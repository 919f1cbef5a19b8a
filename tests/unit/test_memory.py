"""compat.memory: the KTO memory estimator's arithmetic, verdict and fixes (host side, fast).

How close the estimate is to real training is tests/calibration's job; these
tests pin the structure: the breakdown adds up, each fix lowers the peak, the
ranking is sorted, and the story's case (1.8B, batch 16, BF16, 24 GB) gets a
clear "does not fit" with fixes that do.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from compat import memory
from compat.cli import main as cli
from compat.memory import QWEN15_18B, GiB, Setup, Shape

ROOT = Path(__file__).parents[2]

# The story's case: the KTO example's Qwen1.5-1.8B, batch 16, max_length 1024, --bf16, a 24 GB card.
STORY = Setup(shape=memory.shape_for_params(1.8e9), params=int(1.8e9), batch_size=16, seq_len=1024,
              precision="bf16", gpu_gib=24)
TINY = Shape(hidden=128, intermediate=352, layers=2, vocab=4096, heads=4, kv_heads=2)

# Parameter counts measured in a cell environment (trl 1.16.0 / transformers 5.23.0, and the same on
# trl 0.12.2 / transformers 4.46.3): the model built on the meta device from the config, then
# sum(p.numel() for p in model.parameters()).
MEASURED = [
    ({"model_type": "qwen2", "hidden_size": 2048, "intermediate_size": 5504, "num_hidden_layers": 24,
      "num_attention_heads": 16, "num_key_value_heads": 16, "vocab_size": 151936, "tie_word_embeddings": False},
     1_836_828_672),  # Qwen2ForCausalLM: Qwen1.5-1.8B's shape, q/k/v biases
    ({"model_type": "llama", "hidden_size": 96, "intermediate_size": 256, "num_hidden_layers": 3,
      "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 1000, "tie_word_embeddings": True},
     391_584),  # LlamaForCausalLM, grouped-query attention, tied embeddings
    ({"model_type": "llama", "hidden_size": 128, "intermediate_size": 352, "num_hidden_layers": 2,
      "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 4096, "tie_word_embeddings": False},
     1_417_856),  # LlamaForCausalLM, the smallest calibration model
]


@pytest.mark.parametrize(("config", "count"), MEASURED, ids=["qwen1.5-1.8b", "llama-tied-gqa", "llama-untied"])
def test_config_json_parameter_count_matches_a_real_model(tmp_path, config, count):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert memory.load_config(path).params == count


def test_bare_parameter_count_assumes_the_example_models_shape():
    shape = memory.shape_for_params(1.8e9)
    assert (shape.hidden, shape.intermediate, shape.layers, shape.vocab) == (2048, 5504, 24, 151936)
    assert "assumed" in shape.source
    bigger = memory.shape_for_params(7e9)
    assert bigger.hidden > shape.hidden and abs(bigger.params / 7e9 - 1) < 0.15


@pytest.mark.parametrize("setup", [
    STORY,
    replace(STORY, lora_rank=16),
    replace(STORY, precompute_ref=True, gradient_checkpointing=True),
    replace(STORY, logits="chunked", weights="bf16", grad_accum=4),
    replace(STORY, optim="adamw_8bit", device="cpu"),
    Setup(shape=TINY, batch_size=4, seq_len=129, device="cpu", logits="chunked"),
], ids=["story", "lora", "precompute+gc", "chunked+bf16+accum", "8bit-cpu", "tiny-cpu"])
def test_breakdown_sums_to_total_and_is_the_largest_moment(setup):
    e = memory.estimate(setup)
    assert sum(line.bytes for line in e.lines) == e.total
    assert all(line.bytes >= 0 for line in e.lines)
    assert e.total == max(total for _, total in e.phases)
    assert dict(e.phases)[e.phase] == e.total
    assert {line.basis for line in e.lines} <= {"count", "estimate"}


def test_story_case_does_not_fit_and_lists_fixes_that_do():
    r = memory.report(STORY)
    assert not r.estimate.fits and r.estimate.headroom < 0
    assert r.fixes, "no fixes offered"
    assert {"batch", "gradient_checkpointing", "lora", "precompute_ref", "adamw_8bit"} <= {f.key for f in r.fixes}
    assert not any(f.fits for f in r.fixes)  # no single change is enough for a 1.8B full fine-tune on 24 GB ...
    c = r.combination
    assert c is not None and len(c.keys) >= 2 and c.fits and c.total <= 24 * GiB  # ... a combination is
    assert memory.estimate(c.setup).total == c.total and memory.estimate(c.setup).fits
    assert r.keeping_full is not None and "lora" not in r.keeping_full.keys
    assert r.keeping_batch is not None and r.keeping_batch.setup.batch_size == 16
    text = memory.render(r)
    assert "does NOT fit" in text and "estimate: not calibrated at this scale" in text


def test_each_listed_fix_reduces_memory_and_ranking_is_sorted():
    for setup in (STORY, replace(STORY, batch_size=4, gpu_gib=80), replace(STORY, lora_rank=8, weights="bf16")):
        before = memory.estimate(setup).total
        found = memory.fixes(setup)
        assert found
        for f in found:
            assert f.saving > 0 and f.total == before - f.saving == memory.estimate(f.setup).total
        savings = [f.saving for f in found]
        assert savings == sorted(savings, reverse=True)


def test_batch_fix_keeps_the_effective_batch_and_picks_the_largest_that_fits():
    setup = replace(STORY, lora_rank=16, weights="bf16", gpu_gib=40)
    batch = next(f for f in memory.fixes(setup) if f.key == "batch")
    assert batch.setup.effective_batch == setup.effective_batch
    assert batch.fits
    larger = [b for b in range(batch.setup.batch_size + 1, setup.batch_size) if setup.batch_size % b == 0]
    assert not any(memory.estimate(replace(setup, batch_size=b, grad_accum=16 // b)).fits for b in larger)


def _line(e: memory.Estimate, prefix: str) -> memory.Line:
    return next(line for line in e.lines if line.name.startswith(prefix))


def test_lora_and_precompute_remove_the_reference_copy():
    full = memory.estimate(STORY)
    assert _line(full, "reference model").bytes == pytest.approx(1.8e9 * 4, rel=1e-9)
    for changed in (replace(STORY, lora_rank=16), replace(STORY, precompute_ref=True)):
        e = memory.estimate(changed)
        assert _line(e, "reference model").bytes == 0
        assert e.total < full.total


def test_lora_trains_a_small_fraction_and_shrinks_gradients_and_states():
    full, lora = memory.estimate(STORY), memory.estimate(replace(STORY, lora_rank=16))
    trainable = QWEN15_18B.lora_params(16)
    assert 0 < trainable < 0.02 * QWEN15_18B.params
    assert _line(lora, "optimizer states").bytes == trainable * 8 < _line(full, "optimizer states").bytes


def test_eight_bit_optimizer_is_two_bytes_per_parameter():
    e = memory.estimate(replace(STORY, optim="adamw_8bit"))
    assert _line(e, "optimizer states").bytes == 2 * int(1.8e9)
    assert _line(memory.estimate(STORY), "optimizer states").bytes == 8 * int(1.8e9)


def test_precompute_skips_the_reference_forward_moment():
    names = {name for name, _ in memory.estimate(replace(STORY, precompute_ref=True)).phases}
    assert "reference forward" not in names and "backward start" in names


def test_checkpointing_accumulation_and_chunked_logits_shrink_what_they_should():
    base = memory.estimate(STORY)
    gc = memory.estimate(replace(STORY, gradient_checkpointing=True))
    assert _line(gc, "activations: policy forward").bytes < _line(base, "activations: policy forward").bytes / 5
    chunked = memory.estimate(replace(STORY, logits="chunked"))
    assert _line(chunked, "logits").bytes < _line(base, "logits").bytes / 20
    # Accumulating keeps every gradient alive through the next micro-batch.
    accum = memory.estimate(replace(STORY, batch_size=4, grad_accum=4))
    assert _line(accum, "gradients").bytes == int(1.8e9) * 4


def test_weights_dtype_is_explicit_and_changes_the_master_copy():
    fp32, bf16 = memory.estimate(STORY), memory.estimate(replace(STORY, weights="bf16"))
    assert _line(fp32, "policy weights").bytes == 2 * _line(bf16, "policy weights").bytes
    assert _line(bf16, "activations: autocast").bytes == 0  # no FP32 master, nothing to cast
    assert _line(fp32, "activations: autocast").bytes > 0


def test_cpu_mode_has_no_cuda_overhead():
    cuda, cpu = memory.estimate(STORY), memory.estimate(replace(STORY, device="cpu"))
    assert _line(cpu, "framework overhead").bytes == 0
    assert _line(cuda, "framework overhead").bytes >= 0.5 * GiB


def test_fitting_setup_has_positive_headroom_and_no_combination():
    small = Setup(shape=TINY, batch_size=4, seq_len=128, gpu_gib=24)
    r = memory.report(small)
    assert r.estimate.fits and r.estimate.headroom > 0 and r.combination is None
    assert "fits on a 24 GiB GPU" in memory.render(r)


def test_invalid_inputs_raise_clear_errors(tmp_path):
    with pytest.raises(memory.MemoryInputError, match="precision"):
        replace(STORY, precision="int8")
    with pytest.raises(memory.MemoryInputError, match="batch_size"):
        replace(STORY, batch_size=0)
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(memory.MemoryInputError, match="missing"):
        memory.load_config(bad)


def test_cli_text_and_json(capsys, tmp_path):
    argv = ["memory", "--params", "1.8e9", "--batch-size", "16", "--seq-len", "1024", "--precision", "bf16",
            "--gpu-gib", "24"]
    assert cli.main(argv + ["--detail"]) == 0
    text = capsys.readouterr().out
    assert "does NOT fit" in text and "total at peak" in text and "(estimate)" in text
    assert cli.main(argv + ["--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fits"] is False
    assert sum(line["bytes"] for line in data["breakdown"]) == data["total_bytes"]
    assert data["combination"]["keys"] and "not calibrated at this scale" in data["calibration"]
    missing = tmp_path / "nope.json"
    assert cli.main(["memory", "--config-json", str(missing)]) == 2
    assert "cannot read" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input: one line, exit 2


def _write(path, text):
    path.write_text(text)
    return str(path)


BAD_INPUT = {
    "params-zero": ["--params", "0"],
    "params-negative": ["--params", "-5"],
    "params-nan": ["--params", "nan"],
    "params-inf": ["--params", "inf"],
    "params-word": ["--params", "banana"],
    "batch-zero": ["--batch-size", "0"],
    "seq-negative": ["--seq-len", "-1"],
    "gpu-zero": ["--gpu-gib", "0"],
    "gpu-nan": ["--gpu-gib", "nan"],
    "layers-negative": ["--layers", "-2"],
    "vocab-negative": ["--vocab-size", "-1"],
    "hidden-negative": ["--hidden-size", "-8"],
    "lora-negative": ["--lora-rank", "-1"],
    "accum-zero": ["--grad-accum", "0"],
    "gpus-zero": ["--gpus", "0"],
    "nf4-without-lora": ["--weights", "nf4"],
    "config-missing": ["--model-config", "{tmp}/missing.json"],
    "config-not-json": ["--model-config", "{not_json}"],
    "config-list": ["--model-config", "{a_list}"],
    "config-wrong-shape": ["--model-config", "{wrong_shape}"],
    "config-json-alias": ["--config-json", "{not_json}"],
    "findings-not-json": ["--findings", "{not_json}"],
    "findings-not-object": ["--findings", "{a_list}"],
    "findings-bad-rule": ["--findings", "{bad_rule}"],
    "pair-garbled": ["--pair", "trl=1,transformers"],
}


@pytest.mark.parametrize("argv", list(BAD_INPUT.values()), ids=list(BAD_INPUT))
def test_bad_input_is_one_error_line_and_exit_2(capsys, tmp_path, argv):
    files = {"tmp": str(tmp_path), "not_json": _write(tmp_path / "not.json", "{hidden_size: 8"),
             "a_list": _write(tmp_path / "list.json", "[1, 2]"),
             "wrong_shape": _write(tmp_path / "shape.json", json.dumps({**MEASURED[0][0], "hidden_size": "big"})),
             "bad_rule": _write(tmp_path / "rule.json", json.dumps({"facts": {"batch_size_one": [{"value": "maybe"}]}}))}
    argv = [a.format(**files) for a in argv]
    assert cli.main(["memory", *argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert re.match(r"(kto-compat|python -m compat): error: ", lines[0]) and "Traceback" not in captured.err
    flag = argv[0] if argv[0] != "--config-json" else "--model-config"
    assert flag in lines[0] and argv[1].rsplit("/", 1)[-1] in lines[0]  # names the flag and the value
    assert captured.out == ""


@pytest.mark.parametrize(("text", "count"), [
    ("1.8B", 1_800_000_000), ("7b", 7_000_000_000), ("1.8e9", 1_800_000_000), ("500M", 500_000_000),
    ("1_800_000_000", 1_800_000_000), ("2k", 2_000), ("1T", 10**12), ("0.5B", 500_000_000), ("350m", 350_000_000),
])
def test_parameter_counts_take_suffixes(text, count):
    assert memory.parse_count(text) == count


def test_parameter_count_suffix_gives_the_same_report_as_the_plain_number(capsys):
    assert cli.main(["memory", "--params", "1.8B", "--json"]) == 0
    suffixed = json.loads(capsys.readouterr().out)
    assert cli.main(["memory", "--params", "1800000000", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == suffixed


def test_a_reader_that_stops_early_gets_no_traceback():
    # The read end is closed before the child writes: its first write gets EPIPE, deterministically.
    proc = subprocess.Popen([sys.executable, "-m", "compat", "memory", "--params", "1.8B"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


@pytest.mark.parametrize("setup", [
    replace(STORY, batch_size=4, grad_accum=4),
    replace(STORY, batch_size=4, grad_accum=4, precompute_ref=True, gradient_checkpointing=True, logits="chunked"),
    replace(STORY, batch_size=2, grad_accum=8, lora_rank=16, gradient_checkpointing=True),
], ids=["full", "precompute+gc+chunked", "lora+gc"])
def test_accumulated_gradients_are_labelled_as_the_full_buffer(setup):
    e = memory.estimate(setup)
    grads = _line(e, "gradients")
    assert "accumulated" in grads.name and "full-size buffer" in grads.note
    assert not grads.note.startswith("the LM head's")  # the old label for the backward-start moment
    trainable = QWEN15_18B.lora_params(16) if setup.lora_rank else int(1.8e9)
    assert grads.bytes >= trainable * 4  # fp32 master weights / fp32 adapters: the whole buffer is live


def test_memory_package_types_no_trl_version():
    # Which TRL refuses or supports what comes from measured findings, never from typed versions.
    for path in (ROOT / "compat" / "memory").glob("*.py"):
        text = path.read_text()
        assert not re.search(r"\b\d+\.\d+\.\d+\b", text), path.name
        assert not re.search(r"TRL \d|trl[ =<>]+\d", text, re.IGNORECASE), path.name


# --------------------------------------------------------------------------- batch 1: measured, never typed

STORY_ARGV = ["memory", "--params", "1.8B", "--batch-size", "16", "--precision", "bf16", "--gpu-gib", "24"]


def _rule(trl, tf, value, *measured):
    return {"trl": trl, "transformers": tf, "value": value, "measured": [list(p) for p in measured]}


FINDINGS = {
    "rejected": [_rule("==0.12.2", "==4.46.3", "rejected", ("0.12.2", "4.46.3")),
                 _rule(">=1.0.0,<=1.16.0", ">=4.57.6,<=5.23.0", "rejected", ("1.0.0", "4.57.6"), ("1.16.0", "5.23.0"))],
    "accepted": [_rule("==0.12.2", "==4.46.3", "accepted", ("0.12.2", "4.46.3"))],
    "silent": None,  # a findings file without the fact
}


@pytest.fixture
def findings_file(tmp_path):
    def write(kind: str) -> str:
        facts = {"keyword": [_rule("==0.12.2", "==4.46.3", "processing_class")]}
        if FINDINGS[kind] is not None:
            facts["batch_size_one"] = FINDINGS[kind]
        return _write(tmp_path / f"{kind}.json", json.dumps({"schema_version": 2, "facts": facts, "working": []}))
    return write


def _recommended_batches(data: dict) -> list[int]:
    setups = [data[k]["setup"] for k in ("combination", "combination_keeping_batch",
                                          "combination_keeping_full_fine_tune") if data[k]]
    setups += [r["setup"] for r in data.get("recipes", [])]
    return [s["batch_size"] for s in setups]


@pytest.mark.parametrize("kind", ["rejected", "silent", "missing"])
def test_story_recommends_no_per_device_batch_below_two_unless_measured_accepted(capsys, findings_file, tmp_path, kind):
    path = findings_file(kind) if kind != "missing" else str(tmp_path / "absent.json")
    assert cli.main([*STORY_ARGV, "--findings", path, "--detail"]) == 0
    text = capsys.readouterr().out
    assert "per_device_train_batch_size=1," not in text
    assert "Per-device batch kept >= 2" in text
    if kind == "rejected":
        assert "measured: KTOTrainer refuses per_device_train_batch_size=1 on 3 of 3 measured pairs" in text
    else:
        assert "not measured" in text
    assert cli.main([*STORY_ARGV, "--findings", path, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batch_size_one"]["min_per_device_batch"] == 2
    assert _recommended_batches(data) and min(_recommended_batches(data)) >= 2
    assert all("per_device_train_batch_size=1," not in f["change"] for f in data["fixes"])
    full = [r for r in data["recipes"] if r["full_fine_tune"]]
    assert full and full[0]["total_bytes"] <= 24 * GiB and full[0]["setup"]["weights"] == "fp32"


def test_every_fix_and_combination_respects_the_floor():
    r = memory.report(STORY)  # no findings consulted: unmeasured
    assert r.batch_one.min_batch == 2
    assert all(f.setup.batch_size >= 2 for f in r.fixes)
    assert all(c.setup.batch_size >= 2 for c in (r.combination, r.keeping_batch, r.keeping_full) if c)
    assert r.floor.setup.batch_size >= 2


def test_batch_one_is_offered_only_where_measured_accepted(capsys, findings_file):
    assert cli.main([*STORY_ARGV, "--findings", findings_file("accepted"), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batch_size_one"]["status"] == "accepted" and data["batch_size_one"]["min_per_device_batch"] == 1
    batch = next(f for f in data["fixes"] if f["key"] == "batch")
    assert batch["change"].startswith("per_device_train_batch_size=1,")  # nothing fits at 16 rows: the floor is 1


def test_pair_picks_its_own_measurement(tmp_path):
    rules = FINDINGS["rejected"] + [_rule("==0.11.4", "==4.45.2", "accepted", ("0.11.4", "4.45.2"))]
    findings = {"facts": {"batch_size_one": rules}}
    mixed = memory.batch_one(findings, None, "f.json")
    assert mixed.status == "mixed" and mixed.min_batch == 2 and "3 of 4 measured pairs" in mixed.citation
    accepted = memory.batch_one(findings, ("0.11.4", "4.45.2"), "f.json")
    assert accepted.min_batch == 1 and "accepts" in accepted.citation and "0.11.4" in accepted.citation
    refused = memory.batch_one(findings, ("1.16.0", "5.23.0"), "f.json")
    assert refused.status == "rejected" and refused.min_batch == 2
    unknown = memory.batch_one(findings, ("2.0.0", "6.0.0"), "f.json")
    assert unknown.status == "unmeasured" and unknown.min_batch == 2 and unknown.citation.startswith("not measured")


def test_pair_flag_reaches_the_report(capsys, tmp_path):
    rules = FINDINGS["rejected"] + [_rule("==0.11.4", "==4.45.2", "accepted", ("0.11.4", "4.45.2"))]
    path = _write(tmp_path / "f.json", json.dumps({"schema_version": 2, "facts": {"batch_size_one": rules}, "working": []}))
    assert cli.main([*STORY_ARGV, "--findings", path, "--pair", "trl==0.11.4,transformers==4.45.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_size_one"]["min_per_device_batch"] == 1
    assert cli.main([*STORY_ARGV, "--findings", path, "--pair", "trl==1.16.0,transformers==5.23.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["batch_size_one"]["min_per_device_batch"] == 2


def test_a_batch_of_one_as_given_is_flagged():
    r = memory.report(replace(STORY, batch_size=1, grad_accum=16))
    assert any("per_device_train_batch_size=1 as given" in note for note in r.notes)


# --------------------------------------------------------------------------- recipes: ranked by what they cost


def test_story_offers_a_full_fine_tune_recipe_that_fits_and_ranks_it_first(capsys):
    r = memory.report(STORY)
    full = [c for c in r.recipes if c.full_fine_tune]
    assert full, "no full fine-tune recipe offered"
    best_full = full[0]
    assert best_full.fits and best_full.total <= 24 * GiB and best_full.setup.batch_size >= 2
    assert memory.estimate(best_full.setup).total == best_full.total  # computed, not typed
    # The mildest recipe keeps full fine-tuning: LoRA changes what is trained, the full recipe's changes do not.
    assert r.combination == best_full and r.keeping_full == best_full
    assert cli.main([*STORY_ARGV, "--detail"]) == 0
    text = capsys.readouterr().out
    assert "Recipes that fit" in text and "1. full fine-tune" in text
    assert cli.main([*STORY_ARGV]) == 0
    assert "Best recipe that fits: full fine-tune" in capsys.readouterr().out


def test_recipes_are_ranked_by_worst_caveat_then_all_caveats_then_count():
    found = memory.report(STORY).recipes
    assert len(found) >= 2
    keys = [(c.severity, sum(c.severities), len(c.keys)) for c in found]
    assert keys == sorted(keys)
    assert all(c.severity == max(c.severities) and len(c.severities) == len(c.keys) for c in found)
    lora = [c for c in found if not c.full_fine_tune]
    assert lora and all(c.severity > found[0].severity for c in lora)


@pytest.mark.parametrize("setup", [
    STORY,
    replace(STORY, gpu_gib=16),
    replace(STORY, gpu_gib=40, batch_size=8),
    replace(STORY, precision="fp16", gpu_gib=20),
    Setup(shape=memory.shape_for_params(7e9), params=int(7e9), gpu_gib=80),
], ids=["story", "16GiB", "40GiB-batch8", "fp16", "7b-80GiB"])
def test_no_full_fine_tune_recipe_or_fix_uses_half_precision_master_weights(setup):
    r = memory.report(setup)
    for c in r.recipes:
        if c.full_fine_tune:
            assert c.setup.weights == "fp32" and "bf16_weights" not in c.keys, c.keys
    assert all(f.setup.weights == "fp32" for f in r.fixes if f.setup.lora_rank == 0)
    assert r.floor.setup.lora_rank > 0 or r.floor.setup.weights == "fp32"


def test_lora_may_still_load_its_frozen_base_in_bf16():
    found = memory.recipes(replace(STORY, gpu_gib=16))
    assert any("bf16_weights" in c.keys and not c.full_fine_tune for c in found)


def test_full_fine_tune_in_bf16_as_given_is_warned_about():
    r = memory.report(replace(STORY, weights="bf16"))
    assert any(n.startswith("as given: bf16 master weights for a full fine-tune") for n in r.notes)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_weights_as_given_get_fp32_master_recipes(precision):
    """Given bf16 (or fp16) weights, a full fine-tune recipe still never keeps them as the master copy: it loads
    the model in fp32 under autocast, and the fp32 recipe that fits is offered (19.2 GiB for the story's run)."""
    given = replace(STORY, weights=precision, precision=precision)
    r = memory.report(given)
    full = [c for c in r.recipes if c.full_fine_tune]
    assert full and all(c.setup.weights == "fp32" and "fp32_master" in c.keys for c in full)
    assert all(c.setup.lora_rank > 0 for c in r.recipes if c.setup.weights in ("bf16", "fp16"))
    if precision == "bf16":
        assert full[0].total == memory.recipes(STORY)[0].total  # the same fp32 recipe as when fp32 is given


# --------------------------------------------------------------------------- QLoRA and sharding (estimates)


def test_qlora_stores_the_base_in_four_bits_and_lowers_the_estimate():
    lora = memory.estimate(replace(STORY, lora_rank=16))
    qlora = memory.estimate(replace(STORY, lora_rank=16, weights="nf4"))
    assert qlora.total < lora.total < memory.estimate(STORY).total
    linear = QWEN15_18B.layers * QWEN15_18B.layer_linear * int(1.8e9) / QWEN15_18B.params
    adapters = QWEN15_18B.lora_params(16) * 4
    expected = linear * (0.5 + 4 / 64) + (int(1.8e9) - linear) * 2 + adapters
    assert _line(qlora, "policy weights").bytes == pytest.approx(expected, rel=1e-6)
    assert _line(qlora, "policy weights").bytes < _line(lora, "policy weights").bytes / 3
    with pytest.raises(memory.MemoryInputError, match="nf4"):
        replace(STORY, weights="nf4")  # QLoRA without adapters is not a thing


def test_qlora_flag(capsys):
    assert cli.main([*STORY_ARGV, "--qlora", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["setup"]["weights"] == "nf4" and data["setup"]["lora_rank"] == 16
    assert any("not calibrated on real runs" in n for n in data["notes"])


SEVEN_B = Setup(shape=memory.shape_for_params(7e9), params=int(7e9), gpu_gib=80, gpus=4, grad_accum=2)


def test_sharding_divides_what_each_stage_shards():
    none = memory.estimate(SEVEN_B)
    zero2 = memory.estimate(replace(SEVEN_B, shard="zero2"))
    zero3 = memory.estimate(replace(SEVEN_B, shard="zero3"))
    fsdp = memory.estimate(replace(SEVEN_B, shard="fsdp"))
    assert zero3.total < zero2.total < none.total and fsdp.total == zero3.total
    for sharded in (zero2, zero3):
        assert _line(sharded, "optimizer states").bytes == pytest.approx(_line(none, "optimizer states").bytes / 4, abs=1)
        assert _line(sharded, "gradients").bytes < _line(none, "gradients").bytes
    assert _line(zero2, "policy weights").bytes == _line(none, "policy weights").bytes  # ZeRO-2 keeps whole weights
    assert _line(zero2, "reference model").bytes == _line(none, "reference model").bytes  # ... and TRL's reference
    assert _line(zero3, "policy weights").bytes == pytest.approx(_line(none, "policy weights").bytes / 4, abs=1)
    assert _line(zero3, "reference model").bytes == pytest.approx(_line(none, "reference model").bytes / 4, abs=1)
    assert _line(zero3, "sharded weights gathered").bytes > 0


def test_sharding_flags_and_recipes_over_several_gpus(capsys):
    argv = ["memory", "--params", "7b", "--gpu-gib", "80", "--gpus", "4"]
    assert cli.main([*argv, "--shard", "zero3", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["setup"]["shard"] == "zero3" and any("not calibrated on real runs" in n for n in data["notes"])
    assert cli.main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert any(key in r["keys"] for r in data["recipes"] for key in ("zero2", "zero3", "fsdp"))
    assert all(len({"zero2", "zero3", "fsdp"} & set(r["keys"])) <= 1 for r in data["recipes"])
    assert cli.main(["memory", "--params", "1.8B", "--json"]) == 0  # one GPU: nothing to shard over
    assert not any(f["key"] in ("zero2", "zero3", "fsdp") for f in json.loads(capsys.readouterr().out)["fixes"])


# --------------------------------------------------------------------------- the shape: read, or say it is guessed


def test_a_shape_guessed_from_the_parameter_count_is_warned_about(capsys, tmp_path):
    assert cli.main(STORY_ARGV) == 0
    text = capsys.readouterr().out
    assert "WARNING: shape guessed from the parameter count" in text and "--model-config" in text
    assert cli.main([*STORY_ARGV, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["shape_guessed"] is True and any("guessed" in w for w in data["warnings"])
    assert cli.main(["memory", "--json"]) == 0  # nothing given: the example's model, assumed
    assert json.loads(capsys.readouterr().out)["shape_guessed"] is True
    config = _write(tmp_path / "config.json", json.dumps(MEASURED[0][0]))
    for flag in ("--model-config", "--config-json"):
        assert cli.main(["memory", flag, config, "--json"]) == 0
        data = json.loads(capsys.readouterr().out)
        assert data["shape_guessed"] is False and data["warnings"] == []
        assert data["setup"]["shape"]["params"] == MEASURED[0][1]
    assert cli.main(["memory", "--model-config", config]) == 0
    assert "WARNING" not in capsys.readouterr().out


def test_a_refused_batch_as_given_is_raised_before_anything_is_recommended(tmp_path):
    """--batch-size 1 where findings measured KTOTrainer refusing it: the note says so and no recipe keeps 1."""
    rules = [{"trl": "==1.16.0", "transformers": "==5.23.0", "value": "rejected", "measured": [["1.16.0", "5.23.0"]]}]
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"schema_version": 2, "facts": {"batch_size_one": rules}, "working": []}))
    report = memory.report(memory.Setup(shape=memory.QWEN15_18B, batch_size=1, gpu_gib=24.0),
                           memory.batch_one(memory.load_findings(path), None, str(path)))
    assert any("start from 2" in n for n in report.notes)
    assert report.recipes and all(r.setup.batch_size >= 2 for r in report.recipes)
    assert all(f.setup.batch_size >= 2 for f in report.fixes)


def test_the_default_output_leads_with_the_verdict_and_the_best_three_recipes(capsys):
    argv = ["memory", "--params", "1.8B", "--batch-size", "16", "--precision", "bf16", "--gpu-gib", "24"]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) < 25
    assert lines[0].startswith("VERDICT: does NOT fit on a 24 GiB GPU: needs ")
    heads = [ln for ln in lines if not ln.startswith(" ")]
    from compat.cli import memory as memory_cli
    from compat.memory.render import _describe
    r = memory.report(memory_cli.build_setup(cli.build_parser().parse_args(argv)))
    assert heads[1:4] == [f"Best recipe that fits: {_describe(r.recipes[0])}",
                          f"Next, 2: {_describe(r.recipes[1])}", f"Next, 3: {_describe(r.recipes[2])}"]
    # A recipe with the fused LM head names the measured releases that have it, or says none is measured.
    chunked = [ln for ln in lines if "fused, chunked LM head" in ln]
    assert chunked and all(": measured in trl " in ln or ": which TRL releases have it is not measured" in ln
                           for ln in chunked)
    assert "total at peak" not in "\n".join(lines) and "--detail" in lines[-1]


@pytest.mark.parametrize("argv", [["--batch-size", "1000000", "--grad-accum", "1000000"], ["--params", "1e15"],
                                  ["--batch-size", "999983"], ["--seq-len", "1000000", "--gpus", "1000000"]],
                         ids=["huge-effective-batch", "largest-params", "prime-batch", "huge-seq-and-gpus"])
def test_memory_answers_any_input_in_under_a_second(argv, capsys):
    import time

    cli.main(["memory"])  # imports and the findings file read once, as a single command line does
    start = time.process_time()  # CPU time: what the answer costs, not how busy the machine's other cores are
    assert cli.main(["memory", *argv]) in (0, 2)
    assert time.process_time() - start < 1.0
    out = capsys.readouterr()
    assert out.out.startswith("VERDICT: ") or out.err.count("\n") == 1


# The lm_head facts of a findings file: trl 1.13.0 measured "full" between releases measured "fused".
LM_HEAD_RULES = [
    {"trl": ">=1.11.0,<=1.12.0", "transformers": ">=4.56.2,<=5.24.0", "value": "fused",
     "measured": [["1.11.0", "4.56.2"], ["1.12.0", "5.24.0"]]},
    {"trl": "==1.13.0", "transformers": "==5.24.0", "value": "full", "measured": [["1.13.0", "5.24.0"]]},
    {"trl": ">=1.14.0,<=1.16.0", "transformers": ">=4.56.2,<=5.24.0", "value": "fused",
     "measured": [["1.14.0", "4.56.2"], ["1.16.0", "5.24.0"]]},
    {"trl": "==1.0.0", "transformers": "==4.57.6", "value": "full", "measured": [["1.0.0", "4.57.6"]]},
]


@pytest.fixture()
def lm_head_findings(tmp_path):
    path = tmp_path / "findings.json"
    path.write_text(json.dumps({"schema_version": 2, "facts": {"lm_head": LM_HEAD_RULES}, "working": []}))
    return path


def test_the_fused_head_releases_are_read_from_the_lm_head_facts(lm_head_findings):
    from compat.memory.facts import fused_head

    found = fused_head(memory.load_findings(lm_head_findings), "f.json")
    assert found.releases == ("1.11.0", "1.12.0", "1.14.0", "1.16.0")
    assert found.measured == ("1.0.0", "1.11.0", "1.12.0", "1.13.0", "1.14.0", "1.16.0")
    # A run never spans a measured release without it (1.13.0).
    assert found.words() == "measured in trl 1.11.0\u20131.12.0, 1.14.0\u20131.16.0"
    assert fused_head({"facts": {}}, "f.json").words() == ("which TRL releases have it is not measured (these "
                                                           "findings have no lm_head fact)")
    assert fused_head({"facts": {"lm_head": [{"value": "full", "measured": [["1.0.0", "4.57.6"]]}]}}, "f").words() == \
        "none of the 1 TRL releases measured has it"


def test_the_must_show_memory_answer_names_the_measured_releases_in_its_first_25_lines(lm_head_findings, capsys):
    argv = ["memory", "--params", "1.8B", "--batch-size", "16", "--precision", "bf16", "--gpu-gib", "24",
            "--findings", str(lm_head_findings)]
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()[:25]
    assert lines[0].startswith("VERDICT: does NOT fit on a 24 GiB GPU")
    assert lines[3].startswith("Best recipe that fits: ")
    chunked = [ln for ln in lines if "fused, chunked LM head" in ln]
    assert chunked and all(ln.endswith("LM head: measured in trl 1.11.0\u20131.12.0, 1.14.0\u20131.16.0 (means "
                                       "installing a TRL release that has it)") for ln in chunked)
    assert cli.main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["fused_head"]["releases"] == ["1.11.0", "1.12.0", "1.14.0", "1.16.0"]
    assert cli.main([*argv, "--detail"]) == 0
    detail = capsys.readouterr().out
    assert "LM head: measured in trl 1.11.0\u20131.12.0, 1.14.0\u20131.16.0" in detail


def test_a_malformed_lm_head_fact_is_one_line_naming_it(tmp_path, capsys):
    path = tmp_path / "findings.json"
    path.write_text(json.dumps({"schema_version": 2, "facts": {"lm_head": [{"trl": "==1.0.0", "transformers": "==4.0.0",
                                                                           "value": "fused", "measured": "x"}]},
                                "working": []}))
    code = cli.main(["memory", "--params", "1.8B", "--findings", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and "facts.lm_head[0].measured" in err and len(err.splitlines()) == 1
