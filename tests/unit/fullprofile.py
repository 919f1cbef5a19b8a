"""A synthetic full-profile result set: 39 TRL minors x 45 transformers minors = 1,755 cells.

Shaped like real cells (docs/compat/compat.json): about 1,100 installable cells, each with
5 formatter kinds x 140 case outcomes (mostly the same few tables), an environment of 14
distributions and the lock it names (tests/unit/lockdata.py), 3-5 warnings, a training record and the in-cell test counts; about 650
unresolvable cells carrying only the resolver's short refusal. Deterministic, so sizes and
timings measured on it compare between runs. The page tests (tests/unit/test_html.py,
tests/browser/test_page.py) render it.
"""

from __future__ import annotations

import random

from lockdata import lock_text

from compat.contract import CellResult, Drift, Failure, TestFailure, Tests
from compat.harness.locks import lock_id

TRLS = [f"0.{i}.{i % 3}" for i in range(4, 30)] + [f"1.{i}.0" for i in range(13)]  # 39, oldest first
TFS = [f"4.{j}.{j % 4}" for j in range(13, 57)] + ["5.0.0"]  # 45, oldest first
KINDS = ("legacy", "adapter", "adapter_conversational", "adapter_trl", "adapter_text")
CASES = [f"case{i:02d}@{t}" for i in range(35) for t in ("chatml", "gemma", "llama2", "zephyr")]  # 140
META = {"profile": "full", "python": "3.11", "torch": "2.13.0", "platform": "Linux-6.18-x86_64-with-glibc2.36",
        "hardware": "cpu (x86_64, 2 cores, BF16 as CPU autocast)", "suite": "a5bfccbd5089f13c",
        "generated": "2026-11-28T12:10:13Z"}
MEMORY = "cpu: peak RSS above pre-training RSS, /proc/self/statm sampled every 2 ms"
WARNINGS = [
    {"category": "log.WARNING", "message": "[tokenizer=] max_steps is given, it will override any value given in "
     "num_train_epochs", "stage": "construct"},
    {"category": "FutureWarning", "message": "`torch.cpu.amp.autocast(args...)` is deprecated. Please use "
     "`torch.amp.autocast('cpu', args...)` instead.", "stage": "train"},
    {"category": "log.WARNING", "message": "Starting from v4.46, the `logits` model output will have the same type "
     "as the model (except at train time, where it will always be FP32)", "stage": "train"},
    {"category": "log.WARNING", "message": "Could not estimate the number of tokens of the input, floating-point "
     "operations will not be computed", "stage": "train"},
    {"category": "DeprecationWarning", "message": "[tokenizer=] `tokenizer` is deprecated and will be removed in "
     "version 5.0.0 for `KTOTrainer.__init__`. Use `processing_class` instead.", "stage": "construct"},
    {"category": "UserWarning", "message": "When using DataCollatorForCompletionOnlyLM the padding side should be "
     "right", "stage": "format"},
]


def _table(kind: int, era: int, rng: random.Random) -> dict[str, str]:
    if kind == 0:  # legacy: most cases break it, the set depends on the era
        return {c: "pass" if (i + era) % 7 == 0 else "error:IndexError" if i % 3 else "wrong" for i, c in enumerate(CASES)}
    table = dict.fromkeys(CASES, "pass")
    if rng.random() < 0.03:  # now and then one adapter case goes wrong somewhere
        table[CASES[rng.randrange(len(CASES))]] = "wrong"
    return table


def results(seed: int = 7) -> list[CellResult]:
    rng = random.Random(seed)
    out: list[CellResult] = []
    for k, trl in enumerate(TRLS):
        lo = int(k * 0.88)  # TRL k declares transformers >= TFS[lo]: everything older is unresolvable
        era = k // 8
        for j, tf in enumerate(TFS):
            common = dict(declared=f">={TFS[lo]}", released=f"2025-{1 + (k + j) % 12:02d}-{1 + j % 28:02d}T08:44:57.147338Z",
                          log=f"logs/trl{trl}-tf{tf}.log", suite=META["suite"], seconds=round(0.2 + rng.random(), 2))
            if j < lo:
                message = (f"No solution found when resolving dependencies: Because trl=={trl} depends on "
                           f"transformers>={TFS[lo]} and you require transformers=={tf}, we can conclude that your "
                           "requirements are unsatisfiable.")
                out.append(CellResult(trl, tf, "latest", "unresolvable", failure=Failure("resolve", message, "uv"),
                                      timings={"resolve": common["seconds"]}, **common))
                continue
            env = {"python": "3.11.7", "torch": "2.13.0+cpu", "trl": trl, "transformers": tf,
                   "accelerate": f"1.{j % 11}.{k % 3}", "datasets": f"3.{j % 6}.1", "jinja2": "3.1.6",
                   "numpy": "2.1.2", "pyarrow": "17.0.0", "tokenizers": f"0.{19 + j // 10}.1",
                   "huggingface-hub": f"0.{25 + j // 5}.0", "safetensors": "0.4.5", "packaging": "24.1",
                   "pyyaml": "6.0.2"}
            new_kw = j >= 30 or k >= 10
            keyword = {"processing_class": "accepted" if new_kw else "rejected",
                       "tokenizer": "rejected" if j >= 40 else "deprecated" if new_kw else "accepted"}
            raised = {kw: "trl.trainer.kto_trainer.KTOTrainer.__init__" for kw, s in keyword.items() if s == "rejected"}
            formatter = {kind: _table(n, era, rng) for n, kind in enumerate(KINDS)}
            tests = Tests(passed=38 + rng.randrange(4), skipped=3 + rng.randrange(3))
            failure = None
            status = "compatible"
            breaks = j - lo > 24 and k < 20  # old TRL on much newer transformers
            if breaks or rng.random() < 0.04:
                status = "incompatible"
                stage = ("import", "construct", "train")[(k + j) % 3]
                drift = Drift("undeclared-dependency", "rich", "trl.trainer.utils") if stage == "import" and k % 2 else None
                failure = Failure(stage, f"TypeError: KTOTrainer._get_train_sampler() takes 1 positional argument but "
                                  f"2 were given\n  File \"trl/trainer/kto_trainer.py\", line {800 + j}, in train",
                                  "trl.trainer.kto_trainer.KTOTrainer._get_train_sampler", drift)
                tests = Tests(passed=20, skipped=4, failed=(
                    TestFailure(f"tests/cell/kto/test_train.py::test_{stage}_steps", "AssertionError: expected 3 "
                                "optimizer steps\nassert 0 >= 3"),))
                if stage == "import":
                    formatter, keyword, raised = {}, {"processing_class": "untested", "tokenizer": "untested"}, {}
            ok = status == "compatible"
            training = {"device": "cpu", "dtype": "bfloat16", "autocast": True, "steps": 3,
                        "keyword": "processing_class" if new_kw else "tokenizer",
                        "losses": [0.5, round(0.5 - rng.random() / 50, 4), round(0.47 - rng.random() / 50, 4)],
                        "seconds": round(2 + rng.random() * 2, 3), "peak_memory_bytes": 100_000_000 + rng.randrange(10**7),
                        "memory_method": MEMORY} if ok else None
            detail = ({"trained": "33 boundary rows formatted (text rows) and trained 3 BF16 steps of 4; 8 invalid rows "
                                  "refused up front"} if ok else
                      {"refused": f"every entry point raises BrokenPairError naming the '{failure.stage}' failure, "
                                  "before any work"})
            probes = {"prompt_roles": "user,assistant", "batch_size_one": "rejected" if k < 25 else "accepted",
                      "config_fields": "max_length,max_prompt_length" + (",max_completion_length" if k > 12 else "")}
            if keyword["tokenizer"] == "deprecated":
                probes["deprecated_by.tokenizer"] = "trl.trainer.kto_trainer.KTOTrainer.__init__"
            out.append(CellResult(
                trl, tf, "latest", status, environment=env, failure=failure, keyword=keyword, keyword_raised_by=raised,
                import_path=None if failure and failure.stage == "import" else "trl" if k < 30 else "trl.experimental.kto",
                format_mode="conversational" if k > 15 else "text", probes=probes, formatter=formatter,
                training=training, adapter="pass", adapter_outcome="trained" if ok else "refused", adapter_detail=detail,
                tests=tests, warnings=tuple(WARNINGS[i] for i in range(6) if (i + k + j) % 4 and (ok or i < 2)),
                lock=lock_id(lock_text(env)),
                timings={"resolve": 0.8, "install": round(rng.random(), 2), "suite": round(10 + rng.random() * 5, 2)},
                peak_rss_bytes=300_000_000 + rng.randrange(10**8), **common))
    return out
