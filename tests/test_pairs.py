"""DPO pair construction: invariants, each strategy's defining property, and `starloop pairs`."""

import json
import random
from collections import Counter, defaultdict

import pytest

from starloop.loop.cli.main import main
from starloop.loop.config import VerifyConfig
from starloop.loop.records import PAIR_COLUMNS, Sample, sample_to_row
from starloop.loop.runtime.preference_dataset import HUB_FILES
from starloop.loop.runtime.text import cut_at_departure
from starloop.loop.stages.pairs import STRATEGIES, build_pairs, with_rationales
from starloop.loop.stages.verify import verify_samples
from starloop.verifiers.records import Problem, Verdict


def C(pid, text, reason="ok", score=None, finish="stop", prompt="default"):
    prompt = f"Q{pid}: " if prompt == "default" else prompt
    if reason == "ok":
        v = Verdict.ok(score=1.0 if score is None else score)
    else:
        v = Verdict.fail(reason, score=0.0 if score is None else score)
    return Sample(problem_id=pid, completion=text, prompt=prompt, verdict=v, finish_reason=finish,
                  iteration=1, model="m", temperature=0.7, seed=5)


def _random_pool(rng, n_problems=12):
    pool = []
    for p in range(n_problems):
        for k in range(rng.randint(0, 8)):
            reason = rng.choice(["ok", "ok", "wrong", "unparseable", "truncated", "timeout"])
            finish = "length" if reason == "truncated" or rng.random() < 0.1 else "stop"
            text = rng.choice([f"answer {k % 3}", f"a longer worked answer {k}", f"x{k} y{k} z{k}"])
            pool.append(C(f"p{p}", text, reason, score=rng.choice([0.0, 0.5]) if reason != "ok" else None,
                          finish=finish))
    return pool


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("cap", [1, 2, 5])
@pytest.mark.parametrize("exclude_truncated", [True, False])
def test_pair_invariants(strategy, cap, exclude_truncated):
    rng = random.Random(f"{strategy}{cap}{exclude_truncated}")
    pool = _random_pool(rng)
    rows, st = build_pairs(pool, strategy=strategy, per_prompt=cap, exclude_truncated=exclude_truncated, seed=1)
    same = defaultdict(list)  # (prompt, text) -> every candidate with that text
    for c in pool:
        same[(c.prompt, c.completion)].append(c)
    keys = [(r["prompt"], r["chosen"], r["rejected"]) for r in rows]
    assert len(keys) == len(set(keys)), "duplicate pairs"
    for r in rows:
        assert set(r) == set(PAIR_COLUMNS) and r["strategy"] == strategy
        chosen, rejected = same[(r["prompt"], r["chosen"])], same[(r["prompt"], r["rejected"])]
        assert all(c.verdict.correct for c in chosen) and r["chosen_reason"] == "ok"
        assert r["chosen_finish_reason"] != "length"  # a cut-off completion is never chosen
        assert not any(c.verdict.correct for c in rejected) and r["rejected_reason"] != "ok"
        assert r["chosen"] != r["rejected"]
        if exclude_truncated:
            assert r["rejected_reason"] != "truncated" and r["rejected_finish_reason"] != "length"
        assert r["problem_id"] == chosen[0].problem_id == rejected[0].problem_id  # same prompt, same problem
    per_prompt = Counter(r["prompt"] for r in rows)
    assert max(per_prompt.values(), default=0) <= cap
    # As many pairs as the cap allows: every prompt gets min(cap, n_chosen x n_rejected) pairs.
    for prompt in {c.prompt for c in pool}:
        texts = [v for (p, _), v in same.items() if p == prompt and len({c.verdict.correct for c in v}) == 1]
        pos = [v[0] for v in texts if v[0].verdict.correct and v[0].finish_reason != "length"]
        neg = [v[0] for v in texts if not v[0].verdict.correct and not (exclude_truncated and v[0].truncated)]
        assert per_prompt.get(prompt, 0) == min(cap, len(pos) * len(neg))
    assert st["pairs"] == len(rows) and sum(st["rejected_by_reason"].values()) == len(rows)


def test_hardest_takes_highest_score_then_most_similar():
    chosen = "step one adds two and three then step two doubles it giving ten"
    pool = [
        C("a", chosen),
        C("a", "totally unrelated text with no overlap at all here", "wrong", score=0.0),
        C("a", "step one adds two and three then step two doubles it giving eleven", "wrong", score=0.0),
        C("a", "print nonsense", "wrong", score=0.5),  # partial credit beats similarity
    ]
    rows, _ = build_pairs(pool, strategy="hardest", per_prompt=3, seed=0)
    assert [r["rejected"] for r in rows] == [pool[3].completion, pool[2].completion, pool[1].completion]
    for seed in range(5):  # the order does not depend on the seed when nothing ties
        assert build_pairs(pool, strategy="hardest", per_prompt=1, seed=seed)[0][0]["rejected"] == "print nonsense"


def test_length_matched_takes_smallest_length_gap():
    pool = [C("a", "x" * 10), C("a", "y" * 40), C("a", "n" * 100, "wrong"), C("a", "m" * 38, "wrong"),
            C("a", "k" * 13, "wrong")]
    rows, st = build_pairs(pool, strategy="length_matched", per_prompt=2, seed=0)
    gaps = [abs(len(r["chosen"]) - len(r["rejected"])) for r in rows]
    assert gaps == [2, 3]  # (40, 38) then (10, 13): each pair the closest in length still unused
    assert st["mean_abs_length_diff"] == 2.5
    rows, _ = build_pairs(pool, strategy="random", per_prompt=6, seed=0)
    assert {abs(len(r["chosen"]) - len(r["rejected"])) for r in rows} >= {90, 60}  # random does not match


def test_random_is_seeded_and_uses_fresh_completions_first():
    pool = [C("a", f"good {i}") for i in range(4)] + [C("a", f"bad {i}", "wrong") for i in range(4)]
    runs = {tuple((r["chosen"], r["rejected"]) for r in build_pairs(pool, per_prompt=4, seed=s)[0]) for s in range(6)}
    assert len(runs) > 1  # different seeds, different pairs
    assert build_pairs(pool, per_prompt=4, seed=3)[0] == build_pairs(pool, per_prompt=4, seed=3)[0]
    rows, _ = build_pairs(pool, per_prompt=4, seed=0)
    assert len({r["chosen"] for r in rows}) == 4 and len({r["rejected"] for r in rows}) == 4
    rows, _ = build_pairs(pool, per_prompt=16, seed=0)
    assert len(rows) == 16  # then every combination


def test_duplicates_merged_and_conflicts_left_out():
    pool = [C("a", "same answer"), C("a", "same   answer"), C("a", "other", "wrong"), C("a", "other", "wrong"),
            C("a", "both ways"), C("a", "both  ways", "timeout")]
    rows, st = build_pairs(pool, per_prompt=9, seed=0)
    assert [(r["chosen"], r["rejected"]) for r in rows] == [("same answer", "other")]
    assert st["duplicate_completions"] == 2 and st["conflicting_verdicts"] == 2


def test_truncated_and_unparseable_roles():
    pool = [C("a", "right but cut", finish="length"), C("a", "right"), C("a", "cut", "truncated", finish="length"),
            C("a", "garbage", "unparseable"), C("b", "cut wrong", "wrong", finish="length"), C("b", "fine")]
    rows, st = build_pairs(pool, per_prompt=9, seed=0)
    assert {(r["chosen"], r["rejected"]) for r in rows} == {("right", "garbage")}
    assert st["truncated_chosen_dropped"] == 1 and st["truncated_rejected_dropped"] == 2
    assert st["prompts_without_rejected"] == 1
    rows, _ = build_pairs(pool, per_prompt=9, exclude_truncated=False, seed=0)
    assert {(r["chosen"], r["rejected"]) for r in rows} == {("right", "garbage"), ("right", "cut"), ("fine", "cut wrong")}
    assert build_pairs([C("a", "garbage", "unparseable"), C("a", "no", "wrong")], seed=0)[0] == []


def test_grouping_by_problem_id_without_prompt():
    pool = [C("a", "good", prompt=None), C("a", "bad", "wrong", prompt=None), C("b", "bad", "wrong", prompt=None)]
    rows, st = build_pairs(pool, seed=0)
    assert [(r["problem_id"], r["prompt"]) for r in rows] == [("a", "")] and st["prompts"] == 2


def test_bad_arguments():
    with pytest.raises(ValueError, match="strategy"):
        build_pairs([], strategy="best")
    with pytest.raises(ValueError, match=">= 1"):
        build_pairs([], per_prompt=0)


def test_provenance_from_samples():
    def S(text, idx):
        return Sample("p1", text, prompt="PROMPT", iteration=3, finish_reason="stop", num_tokens=4, index=idx,
                      model="/m/iter-2", temperature=0.8, seed=11 + idx)

    # A sample is its own pairing candidate; verification stamps the verifier's name and version on its verdict.
    samples = [S("#### 4", 0), S("#### 5", 1)]
    verify_samples(samples, {"p1": Problem("p1", "math", "2+2", "4")}, VerifyConfig(workers=1))
    (row,), _ = build_pairs(samples, seed=0)
    assert row["prompt"] == "PROMPT" and row["problem_id"] == "p1" and row["iteration"] == 3
    assert (row["chosen_model"], row["chosen_temperature"], row["chosen_seed"]) == ("/m/iter-2", 0.8, 11)
    assert (row["rejected_reason"], row["rejected_seed"]) == ("wrong", 12)
    assert row["verifier"] == "math" and row["verifier_version"]


# ---------------------------------------------------------------------------------------------- CLI


def _verified_rows(n_problems=3, prompt=True):
    rows = []
    for p in range(n_problems):
        for text, reason in [(f"we add 2 and {p} to get {2 + p} #### {2 + p}", "ok"),
                             (f"we add 2 and {p} to get {3 + p} #### {3 + p}", "wrong"),
                             ("hmm", "unparseable"), (f"we add 2 and {p} to", "truncated")]:
            row = {"id": f"p{p}", "completion": text, "answer": str(2 + p),
                   "finish_reason": "length" if reason == "truncated" else "stop",
                   "verdict": {"correct": reason == "ok", "score": float(reason == "ok"), "reason": reason,
                               "extracted": None, "detail": ""}}
            if prompt:
                row["prompt"] = f"Q: 2+{p}\nA: "
            rows.append(row)
    return rows


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))


def test_pairs_cli_writes_dataset(tmp_path):
    import datasets
    import pyarrow.parquet as pq

    inp, out = tmp_path / "verified.jsonl", tmp_path / "pairs"
    _write(inp, _verified_rows())
    assert main(["pairs", "--input", str(inp), "--output", str(out), "--strategy", "hardest", "--per-prompt", "1",
                 "--verifier", "math"]) == 0
    ds = datasets.load_from_disk(str(out))["train"]
    assert len(ds) == 3 and ds.column_names == list(PAIR_COLUMNS)
    assert all(r["rejected_reason"] == "wrong" for r in ds)  # hardest: the near miss, not the garbage
    assert all(r["verifier"] == "math" for r in ds)
    assert pq.read_table(out / "pairs.parquet").to_pylist() == ds.to_list()
    # load_dataset reads the folder too (the Parquet file its card names), and so does the Hub copy:
    # exactly the files --push-to-hub uploads (no Hub is reachable here: the upload itself is one
    # huggingface_hub call, upload_folder with these files).
    assert datasets.load_dataset(str(out), split="train").to_list() == ds.to_list()
    hub = tmp_path.parent / f"{tmp_path.name}-hub-copy"
    hub.mkdir()
    for name in HUB_FILES:
        (hub / name).write_bytes((out / name).read_bytes())
    assert datasets.load_dataset(str(hub), split="train").to_list() == ds.to_list()
    assert [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()] == ds.to_list()
    card = (out / "README.md").read_text()
    assert "| pairs | 3 |" in card and "hardest" in card and "| truncated | 3 | 0 |" in card
    assert json.loads((out / "stats.json").read_text())["stats"]["truncated_rejected_dropped"] == 3
    # Existing output: refused, then replaced with --overwrite.
    assert main(["pairs", "--input", str(inp), "--output", str(out), "--include-truncated"]) == 2
    assert main(["pairs", "--input", str(inp), "--output", str(out), "--include-truncated", "--per-prompt", "9"]) != 0
    assert main(["pairs", "--input", str(inp), "--output", str(out), "--include-truncated", "--per-prompt", "9",
                 "--overwrite"]) == 0
    assert len(datasets.load_from_disk(str(out))["train"]) == 9
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pairs", "verified.jsonl"]  # nothing half-written


def test_pairs_cli_without_prompt_groups_by_id(tmp_path):
    import datasets

    inp, out = tmp_path / "v.jsonl", tmp_path / "pairs"
    _write(inp, _verified_rows(prompt=False))
    assert main(["pairs", "--input", str(inp), "--output", str(out)]) == 0
    ds = datasets.load_from_disk(str(out))["train"]
    assert sorted(set(ds["problem_id"])) == ["p0", "p1", "p2"] and set(ds["prompt"]) == {""}


def test_pairs_cli_conversational_prompts_give_trls_conversational_preference_rows(tmp_path, tiny_model):
    import datasets

    rows = _verified_rows()
    for r in rows:
        r["prompt"] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": r["prompt"]}]
        r["completion"] = [{"role": "assistant", "content": r["completion"]}]  # a conversational completion too
    inp, out = tmp_path / "v.jsonl", tmp_path / "pairs"
    _write(inp, rows)
    assert main(["pairs", "--input", str(inp), "--output", str(out), "--per-prompt", "1", "--verifier", "math"]) == 0
    ds = datasets.load_from_disk(str(out))["train"]
    assert len(ds) == 3
    for row in ds:
        assert [m["role"] for m in row["prompt"]] == ["system", "user"]
        assert [m["role"] for m in row["chosen"]] == [m["role"] for m in row["rejected"]] == ["assistant"]
    # TRL's DPOTrainer takes the folder as it is (the tiny model's tokenizer has a chat template).
    small = [x for k, v in (("max_steps", 1), ("per_device_train_batch_size", 2), ("max_length", 64),
                            ("gradient_checkpointing", "false")) for x in ("--set", f"train.dpo.{k}={v}")]
    assert main(["train", "--kind", "dpo", "--model", tiny_model, "--data", str(out), "--output",
                 str(tmp_path / "dpo"), *small]) == 0


def _no_verdict():
    rows = _verified_rows(1)
    for r in rows:
        del r["verdict"]
    return rows


def _one(key, value):
    rows = _verified_rows(1)
    if value is None:
        del rows[1][key]
    else:
        rows[1][key] = value
    return rows


@pytest.mark.parametrize(
    "rows, needle",
    [
        ([], "no rows"),
        (['{"completion": "x"}', "{broken"], "v.jsonl:2"),
        (_no_verdict(), "run `starloop verify`"),
        (_one("verdict", None), "row 2: missing field 'verdict'"),
        (_one("verdict", {"correct": True}), "row 2: unusable 'verdict'"),
        (_one("verdict", {"correct": False, "score": 0, "reason": "meh"}), "unknown verdict reason"),
        (_one("completion", None), "row 2: missing field 'completion'"),
        (_one("completion", 7), "'completion' must be a string"),
        (_one("prompt", None), "row 2: missing field 'prompt'"),
        (_one("prompt", [{"role": "user", "content": "hi"}]), "row 2: mixes string and conversational"),
        (_one("prompt", [{"role": "user"}]), "row 2: mixes string and conversational"),
        ([r for r in _verified_rows(2) if r["verdict"]["reason"] != "ok"], "no preference pairs"),
    ],
)
def test_pairs_cli_bad_input(tmp_path, capsys, rows, needle):
    inp, out = tmp_path / "v.jsonl", tmp_path / "pairs"
    _write(inp, rows)
    assert main(["pairs", "--input", str(inp), "--output", str(out)]) == 2
    assert needle in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.jsonl"]


def test_pairs_cli_bad_arguments(tmp_path, capsys):
    assert main(["pairs", "--input", str(tmp_path / "nope.jsonl"), "--output", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err
    _write(tmp_path / "v.jsonl", _verified_rows(1))
    assert main(["pairs", "--input", str(tmp_path / "v.jsonl"), "--output", str(tmp_path / "o"), "--per-prompt", "0"]) == 2
    assert "--per-prompt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["pairs", "--input", "x", "--output", "y", "--strategy", "best"])


def test_pairs_cli_reads_run_verified_samples(tmp_path):
    """A run's iter-NNN/verify/verified.jsonl (Sample rows) keeps its sampler provenance."""
    import datasets

    rows = []
    for i, (text, reason) in enumerate([("#### 4", "ok"), ("#### 5", "wrong")]):
        v = Verdict.ok() if reason == "ok" else Verdict.fail(reason)
        rows.append(sample_to_row(Sample("p1", text, prompt="Q: 2+2\nA: ", iteration=2, finish_reason="stop",
                                         num_tokens=6, index=i, model="runs/x/iter-001/train/model", temperature=0.8,
                                         seed=7, verdict=v)))
    _write(tmp_path / "verified.jsonl", rows)
    assert main(["pairs", "--input", str(tmp_path / "verified.jsonl"), "--output", str(tmp_path / "p"),
                 "--verifier", "math"]) == 0
    (row,) = datasets.load_from_disk(str(tmp_path / "p"))["train"].to_list()
    assert (row["problem_id"], row["iteration"], row["chosen_model"], row["rejected_temperature"], row["chosen_seed"]) \
        == ("p1", 2, "runs/x/iter-001/train/model", 0.8, 7)
    assert row["verifier"] == "math" and row["verifier_version"]


def test_prompt_pairs_do_not_depend_on_other_prompts():
    a = [C("a", f"good {i}") for i in range(3)] + [C("a", f"bad {i}", "wrong") for i in range(3)]
    b = [C("b", f"fine {i}") for i in range(3)] + [C("b", f"poor {i}", "wrong") for i in range(3)]
    alone, _ = build_pairs(a, per_prompt=2, seed=4)
    together, _ = build_pairs(b + a, per_prompt=2, seed=4)
    assert [r for r in together if r["problem_id"] == "a"] == alone


def test_rationales_are_chosen_only_for_problems_without_an_own_verified_sample():
    verified = [C("solved", "own right", "ok"), C("solved", "own wrong", "wrong"),
                C("failed", "wrong 1", "wrong"), C("failed", "wrong 2", "wrong")]
    rationale = C("failed", "verified rationale", "ok")
    rationale.hinted = True
    spare = C("solved", "a second rationale", "ok")
    spare.hinted = True
    wrong_rationale = C("other", "unverified", "wrong")
    candidates, rescued = with_rationales(verified, [rationale, spare, wrong_rationale])
    assert rescued == 1 and candidates == [*verified, rationale]
    rows, st = build_pairs(candidates, per_prompt=2, seed=0)
    failed = [r for r in rows if r["problem_id"] == "failed"]
    assert len(failed) == 2 and {r["chosen"] for r in failed} == {"verified rationale"}
    assert {r["rejected"] for r in failed} == {"wrong 1", "wrong 2"} and all(r["chosen_hinted"] for r in failed)
    assert not any(r["chosen_hinted"] for r in rows if r["problem_id"] == "solved")
    # without the option the failed problem gives no pair
    assert {r["problem_id"] for r in build_pairs(verified, per_prompt=2, seed=0)[0]} == {"solved"}


@pytest.mark.parametrize("chosen,rejected,cut,expected", [
    # The slip is in line 3 ("24" for 23); the rest of the failed chain computes correctly from it.
    ("=9+8+6+9\n=17+6+9\n=23+9\n=32\n#### 32", "=9+8+6+9\n=17+6+9\n=24+9\n=33\n#### 33", "step",
     "=9+8+6+9\n=17+6+9\n=24+9\n"),
    ("=9+8+6+9\n=17+6+9\n=23+9\n=32\n#### 32", "=9+8+6+9\n=17+6+9\n=24+9\n=33\n#### 33", "word",
     "=9+8+6+9\n=17+6+9\n=24"),
    ("=9+8+6+9\n=17+6+9\n=23+9\n=32\n#### 32", "=9+8+6+9\n=17+6+9\n=23+9\n=32\n#### 32 and more", "word",
     "=9+8+6+9\n=17+6+9\n=23+9\n=32\n#### 32 "),  # departs at a space: the one character
    ("x = sort(x)\nreturn x", "x = sorted_list(x)\nreturn x", "word", "x = sorted_list"),
    ("a\nb\nc", "a\nb", "step", "a\nb"),  # stopped early: the stop is the departure, nothing to cut
    ("a\nb\nc", "a\nb\nd and\nmore", "step", "a\nb\nd and\n"),
    ("a\nb", "a\nz", "step", "a\nz"),  # the departing line is the last: up to the end
    ("=1\n", "=2\n=3", "none", "=2\n=3"),
])
def test_cut_at_departure(chosen, rejected, cut, expected):
    assert cut_at_departure(chosen, rejected, cut) == expected


def test_cut_rejected_pairs_keep_the_chosen_whole_and_record_the_cut():
    chosen = "=9+8+6+9\n=17+6+9\n=23+9\n=32\n#### 32"
    pool = [C("p1", chosen), C("p1", "=9+8+6+9\n=17+6+9\n=24+9\n=33\n#### 33", "wrong"),
            C("p2", "=4\n#### 4"), C("p2", "=4\n", "unparseable")]  # p2's rejected stopped early
    rows, st = build_pairs(pool, per_prompt=2, cut_rejected="step")
    by_id = {r["problem_id"]: r for r in rows}
    assert by_id["p1"]["chosen"] == chosen and by_id["p1"]["rejected"] == "=9+8+6+9\n=17+6+9\n=24+9\n"
    assert by_id["p1"]["rejected_cut"] == "step"
    assert by_id["p2"]["rejected"] == "=4\n" and by_id["p2"]["rejected_cut"] is None
    assert st["rejected_cut"] == 1 and all(set(r) == set(PAIR_COLUMNS) for r in rows)
    whole, st0 = build_pairs(pool, per_prompt=2)
    assert [r["rejected_cut"] for r in whole] == [None, None] and st0["rejected_cut"] == 0
    with pytest.raises(ValueError, match="cut_rejected"):
        build_pairs(pool, cut_rejected="line")


def test_failed_texts_that_cut_to_the_same_text_make_one_pair_with_a_chosen_text():
    chosen = "=9+8\n=17\n#### 17"
    pool = [C("p1", chosen), C("p1", "=9+8\n=18\n#### 18", "wrong"), C("p1", "=9+8\n=18\n#### 19", "wrong"),
            C("p1", "=9+8\n=16\n#### 16", "wrong")]
    rows, st = build_pairs(pool, per_prompt=3, cut_rejected="word", seed=3)
    assert sorted(r["rejected"] for r in rows) == ["=9+8\n=16", "=9+8\n=18"]
    assert st["duplicate_cut_pairs"] == 1 and st["pairs"] == 2
    whole, st0 = build_pairs(pool, per_prompt=3, seed=3)  # uncut: three distinct pairs, as before
    assert len(whole) == 3 and st0["duplicate_cut_pairs"] == 0


def test_pairs_cli_cuts_rejected_from_the_config(tmp_path):
    inp, out = tmp_path / "verified.jsonl", tmp_path / "pairs"
    _write(inp, _verified_rows())
    assert main(["pairs", "--input", str(inp), "--output", str(out), "--set", "pairs.cut_rejected=word"]) == 0
    rows = [json.loads(x) for x in (out / "pairs.jsonl").read_text().splitlines()]
    assert rows and all(r["rejected_cut"] in (None, "word") for r in rows)
    assert any(r["rejected_cut"] == "word" for r in rows)
    assert json.loads((out / "stats.json").read_text())["settings"]["cut_rejected"] == "word"
    assert main(["pairs", "--input", str(inp), "--output", str(tmp_path / "p2"), "--set",
                 "pairs.cut_rejected=lines"]) == 2
